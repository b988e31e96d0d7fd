from django.core.management.base import BaseCommand, CommandError

from likes import transfer
from likes.management.commands._site import add_site_argument, site_of


class Command(BaseCommand):
    help = (
        "Import like counts from the original service's SQLite file (table "
        "likes(post_id, count)) or from a CSV or JSON file written by likes_export. "
        "Safe to repeat: each row replaces the post's imported part and keeps the "
        "likes counted here since, so importing the same file again changes "
        "nothing. Invalid rows are reported and skipped; all valid rows are "
        "written in one transaction."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "path", help="The file to import: a SQLite database, CSV or JSON."
        )
        parser.add_argument(
            "--format",
            choices=transfer.IMPORT_FORMATS,
            help=(
                "The file's format. Default: detected from the content (the "
                "SQLite header, else JSON when it parses as JSON, else CSV)."
            ),
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Report what would change and write nothing.",
        )
        parser.add_argument(
            "--strict",
            action="store_true",
            help="Refuse the whole import, writing nothing, if any row is invalid.",
        )
        add_site_argument(parser)

    def handle(self, *args, **options):
        dry_run, verbosity = options["dry_run"], options["verbosity"]
        site = site_of(options)
        verb = "checked" if dry_run else "imported"

        def progress(done: int, total: int) -> None:
            if verbosity:
                self.stderr.write(f"{verb} {done}/{total} rows", style_func=str)

        try:
            result = transfer.import_counts(
                path=options["path"],
                format=options["format"],
                dry_run=dry_run,
                strict=options["strict"],
                progress=progress,
                # Read here, not bound as a default, so tests can shorten it.
                progress_every=transfer.PROGRESS_EVERY,
                site_id=site.id,
            )
        except transfer.InvalidRowsError as exc:
            for error in exc.errors:
                self.stderr.write(str(error))
            raise CommandError(str(exc)) from exc
        except transfer.TransferError as exc:
            raise CommandError(str(exc)) from exc

        for error in result.errors:
            self.stderr.write(f"{error} Skipped.", style_func=self.style.WARNING)
        if (dry_run and verbosity) or verbosity >= 2:
            for change in result.changes:
                before = "new post" if change.before is None else change.before
                self.stdout.write(f"{change.post_id}: {before} -> {change.after} likes")
        self.stdout.write(
            f"{'Would import' if dry_run else 'Imported'} {result.imported} of "
            f"{result.rows} rows ({result.format}): {result.created} new, "
            f"{result.updated} updated, {result.unchanged} unchanged, "
            f"{result.skipped} skipped."
            + (f" {result.reactions} reaction counts." if result.reactions else "")
        )
        if dry_run:
            self.stdout.write("Dry run: nothing was written.")
