#!/bin/sh
# Build a stand-in for python:3.11-slim-bookworm from Debian's own packages and
# import it under that name, for building docker/Dockerfile where no image
# registry is reachable (tests/test_container.py).
#
# Like the official image: Debian bookworm, Python 3.11 with `python` and `pip`
# in /usr/local/bin (a venv there), the Python headers, no compiler.
# Unlike it: Debian's Python 3.11 build rather than python.org's.
#
# Usage (as root): tests/container/standin-base.sh [podman arguments...]
set -eu

TAG=docker.io/library/python:3.11-slim-bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
LABEL=org.opencontainers.image.description="Stand-in for python:3.11-slim-bookworm, built from Debian packages by tests/container/standin-base.sh"

root=$(mktemp -d "${TMPDIR:-/tmp}/standin-base.XXXXXX")
trap 'rm -rf "$root"' EXIT INT TERM

debootstrap --variant=minbase --include=python3,python3-venv \
    bookworm "$root" "$MIRROR" >"$root.log" 2>&1 || {
    cat "$root.log" >&2
    exit 1
}
rm -f "$root.log"

# The official image carries Python's headers (for building wheels) but no
# compiler: unpack only the headers, without the -dev packages' dependencies.
chroot "$root" /bin/sh -eu -c '
    cd /tmp
    apt-get download libpython3.11-dev >/dev/null 2>&1
    dpkg-deb --fsys-tarfile libpython3.11-dev_*.deb | tar -x -C / ./usr/include
    rm -f libpython3.11-dev_*.deb
    python3 -m venv /usr/local
    apt-get clean
'
rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
    "$root"/usr/share/locale/* "$root"/usr/share/info/*

tar -C "$root" -c . | podman "$@" import --quiet \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "LABEL $LABEL" \
    --change 'CMD ["python3"]' \
    - "$TAG" >/dev/null
echo "Imported the stand-in base image as $TAG"
