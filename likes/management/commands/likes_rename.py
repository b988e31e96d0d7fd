from django.core.management.base import BaseCommand, CommandError

from likes import services
from likes.management.commands._site import add_site_argument, site_of


class Command(BaseCommand):
    help = (
        "Rename a post (its URL changed): move OLD's count, imported count and "
        "like history to NEW. If NEW already exists, the two are merged."
    )

    def add_arguments(self, parser):
        parser.add_argument("old", metavar="OLD", help="The post id to rename.")
        parser.add_argument("new", metavar="NEW", help="The new post id.")
        add_site_argument(parser)

    def handle(self, *args, **options):
        site = site_of(options)
        try:
            result = services.post_rename(
                old=options["old"], new=options["new"], site_id=site.id
            )
        except services.ServiceError as exc:
            raise CommandError(str(exc)) from exc
        how = "Merged" if result.merged_into_existing else "Renamed"
        into = "into the existing post" if result.merged_into_existing else "to"
        self.stdout.write(
            f"{how} {result.old!r} {into} {result.new!r}: "
            f"{result.new!r} now has {result.likes:,} likes."
        )
