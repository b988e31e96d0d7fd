#!/bin/sh
# Container start: apply migrations, then run the command (gunicorn by default).
#
# Replicas starting together take turns: migrate_locked holds a PostgreSQL
# advisory lock (SQLite: a file lock beside the database) around migrate.
# MIGRATE_ON_START=false skips this, e.g. when migrations run as a separate
# step of a release.
set -eu

case "${MIGRATE_ON_START:-true}" in
    true | 1 | yes | on)
        python manage.py migrate_locked --noinput
        ;;
    false | 0 | no | off) ;;
    *)
        echo "MIGRATE_ON_START must be true or false, not '${MIGRATE_ON_START}'" >&2
        exit 64
        ;;
esac

# exec: the command replaces this shell and receives docker's signals itself.
exec "$@"
