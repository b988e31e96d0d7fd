"""The project's settings without the observability middleware.

The baseline of tests/benchmarks/observability.py: what the stack costs is
measured against this.
"""

from gateway_site.settings.base import *  # noqa: F403
from gateway_site.settings.base import MIDDLEWARE

MIDDLEWARE = [
    name
    for name in MIDDLEWARE
    if name != "gateway_site.middleware.ObservabilityMiddleware"
]
METRICS_ENABLED = False
