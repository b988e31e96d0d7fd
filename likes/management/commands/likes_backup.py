from django.core.management.base import BaseCommand, CommandError

from likes import backup


class Command(BaseCommand):
    help = (
        "Copy the SQLite database to a file while the service keeps running "
        "(SQLite's backup API; written to a temporary file, integrity-checked, "
        "then renamed). For PostgreSQL use pg_dump."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "destination",
            help="The backup file (replaced if it exists), or a directory (created "
            "when the path ends in a slash) for "
            "a timestamped likes-YYYYMMDDTHHMMSSZ.sqlite3 in it.",
        )

    def handle(self, *args, **options):
        try:
            result = backup.backup_sqlite(destination=options["destination"])
        except (backup.BackupError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"Backed up {result.posts} posts ({result.likes} likes) to {result.path}."
        )
