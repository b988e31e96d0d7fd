from django.core.management.base import BaseCommand, CommandError

from likes import transfer
from likes.management.commands._site import add_site_argument, site_of
from likes.models import Post


class Command(BaseCommand):
    help = (
        "Export every post's like count, most liked first, as CSV (header "
        "post_id,likes) or JSON (a list of {post_id, likes}), in UTF-8. "
        "likes_import reads both back."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--format",
            choices=transfer.EXPORT_FORMATS,
            default="csv",
            help="Output format (default: csv).",
        )
        parser.add_argument(
            "--output",
            "-o",
            metavar="PATH",
            help="Write to this file (replaced if it exists). Default: stdout.",
        )
        add_site_argument(parser)

    def handle(self, *args, **options):
        output, format = options["output"], options["format"]
        posts = Post.objects.filter(site_id=site_of(options).id)
        if output is None:
            transfer.export_counts(out=self.stdout, format=format, posts=posts)
            return
        try:
            with open(output, "w", encoding="utf-8", newline="") as out:
                count = transfer.export_counts(out=out, format=format, posts=posts)
        except OSError as exc:
            raise CommandError(f"{output}: cannot write: {exc.strerror}.") from exc
        self.stdout.write(f"Exported {count} posts to {output} ({format}).")
