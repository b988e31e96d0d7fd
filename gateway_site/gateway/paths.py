"""The path rules of both gateway routes: what may reach a service's URL space.

A path is checked as received, before anything decodes it, so that no spelling
of ``..`` or of a slash slips through: dot segments (``.``, ``..``, also
percent-encoded: ``%2e%2e``), encoded slashes and backslashes (``%2f``,
``%5c``: ``..%2f`` would climb on a server that decodes them), a backslash, and
segments that end a dot segment with a path parameter (``..;`` is ``..`` to
Tomcat and its kin) are refused.
"""

import re

_ENCODED_SEPARATOR = re.compile(rb"%(?:2f|5c)", re.IGNORECASE)
_DOT = re.compile(rb"%2e", re.IGNORECASE)


def problem(raw_path: bytes) -> str | None:
    """Why a raw path (percent-encoded, as sent) is refused, or None."""
    if b"\\" in raw_path or _ENCODED_SEPARATOR.search(raw_path):
        return "Encoded slashes and backslashes are not allowed."
    for segment in raw_path.split(b"/"):
        name = _DOT.sub(b".", segment.split(b";", 1)[0])
        if name in (b".", b".."):
            return "Dot segments are not allowed."
    return None
