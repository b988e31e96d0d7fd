"""Container health check: exit 0 when this container's /health answers healthy.

Uses only the standard library (the image has no curl). The request names a
host from ALLOWED_HOSTS, so Django's host validation accepts it whatever the
deployment's host names are.
"""

import json
import os
import sys
import urllib.request


def allowed_host() -> str:
    raw = os.environ.get("ALLOWED_HOSTS", "").strip()
    hosts = json.loads(raw) if raw.startswith("[") else raw.split(",")
    for host in (str(h).strip() for h in hosts):
        if host and host != "*":
            # ".example.com" allows example.com and its subdomains.
            return host.lstrip(".")
    return "localhost"


class NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect would lead to another server's health (e.g. the public site)."""

    def redirect_request(self, *args, **kwargs):
        return None


def main() -> int:
    port = os.environ.get("API_GATEWAY_PORT", "8000")
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/health", headers={"Host": allowed_host()}
    )
    try:
        opener = urllib.request.build_opener(NoRedirects)
        with opener.open(request, timeout=4) as response:
            healthy = json.load(response).get("status") == "healthy"
    except (OSError, ValueError) as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
