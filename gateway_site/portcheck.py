"""``python -m gateway_site.portcheck HOST PORT``: exit 1 with one line when the
port is taken, before gunicorn would retry binding it for several seconds.

``make run`` calls it; the line names a free port to use instead.
"""

import errno
import socket
import sys


def available(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # What gunicorn sets: a port in TIME_WAIT is not "in use".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def suggestion(host: str, port: int) -> int | None:
    for candidate in range(port + 1, min(port + 50, 65536)):
        if available(host, candidate):
            return candidate
    return None


def main(argv: list[str]) -> int:
    host, port = argv[0], int(argv[1])
    if available(host, port):
        return 0
    free = suggestion(host, port)
    hint = f"; try make run PORT={free}" if free else ""
    print(f"port {port} is in use on {host}{hint}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
