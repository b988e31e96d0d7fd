from django.core.management.base import BaseCommand

from likes import services


class Command(BaseCommand):
    help = (
        "Delete dedupe salts and visitor hashes older than 48 hours. "
        "The service also does this by itself at most hourly; run it from cron "
        "when the service may sit idle."
    )

    def handle(self, *args, **options):
        result = services.purge_expired()
        self.stdout.write(
            f"Deleted {result.salts_deleted} salt(s); "
            f"cleared {result.hashes_cleared} visitor hash(es)."
        )
