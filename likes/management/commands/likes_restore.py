from django.core.management.base import BaseCommand, CommandError

from likes import backup


class Command(BaseCommand):
    help = (
        "Replace the SQLite database's content with a file made by likes_backup, "
        "in one transaction (safe while the service runs; likes counted since "
        "the backup are lost). For PostgreSQL use pg_restore."
    )

    def add_arguments(self, parser):
        parser.add_argument("source", help="A file written by likes_backup.")
        parser.add_argument(
            "--yes",
            action="store_true",
            help="Confirm: the current data is replaced by the backup's.",
        )

    def handle(self, *args, **options):
        if not options["yes"]:
            raise CommandError(
                "This replaces every count with the backup's. Run again with --yes."
            )
        try:
            result = backup.restore_sqlite(source=options["source"])
        except (backup.BackupError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"Restored {result.posts} posts ({result.likes} likes) from {result.path}."
        )
