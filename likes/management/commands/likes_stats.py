import json

from django.core.management.base import BaseCommand, CommandError

from likes.management.commands._site import add_site_argument, site_of
from likes.models import Post


class Command(BaseCommand):
    help = "Show the most liked posts and the total number of likes."

    def add_arguments(self, parser):
        parser.add_argument(
            "--limit",
            type=int,
            default=20,
            metavar="N",
            help="How many posts to show (default: 20; 0 for all).",
        )
        parser.add_argument(
            "--json",
            action="store_true",
            help='Print a JSON list of {"post_id": ..., "likes": ...} instead.',
        )
        add_site_argument(parser)

    def handle(self, *args, **options):
        limit = options["limit"]
        if limit < 0:
            raise CommandError("--limit must be 0 (all) or more.")
        site = site_of(options)
        result = Post.objects.filter(site_id=site.id).stats(limit or None)
        if options["json"]:
            rows = [{"post_id": p.post_id, "likes": p.likes} for p in result.top]
            self.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2))
            return

        rows = [
            (str(rank), post.post_id, f"{post.likes:,}")
            for rank, post in enumerate(result.top, start=1)
        ]
        header = ("rank", "post id", "likes")
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
        for rank, post_id, likes in [header, *rows]:
            self.stdout.write(
                f"{rank:>{widths[0]}}  {post_id:<{widths[1]}}  {likes:>{widths[2]}}"
            )
        shown = f" (top {len(rows)} shown)" if len(rows) < result.posts else ""
        self.stdout.write(
            f"Total: {result.likes:,} likes on {result.posts:,} posts{shown}."
        )
