"""Prometheus counters of the likes app, incremented by likes.services.

Registered in prometheus-client's default registry; the project exposes them
(``/metrics`` in gateway_site). With ``PROMETHEUS_MULTIPROC_DIR`` set they are
shared by all worker processes.
"""

from prometheus_client import Counter

likes_added = Counter("likes_added", "Likes counted.")
likes_removed = Counter("likes_removed", "Likes undone with their receipt.")
likes_duplicates = Counter(
    "likes_duplicates", "Repeat likes by the same visitor, answered but not counted."
)
