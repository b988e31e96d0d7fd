from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from likes import apikeys, services


def _when(value) -> str:
    if value is None:
        return "never"
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M %Z")


class Command(BaseCommand):
    help = (
        "Create, list and revoke the API keys of the stats API (GET /api/stats "
        "with an X-API-Key header). Only a key's prefix and a salted hash are "
        "stored: a key is shown once, when it is created."
    )

    def add_arguments(self, parser):
        actions = parser.add_subparsers(
            dest="action", required=True, metavar="{create,list,revoke}"
        )
        create = actions.add_parser(
            "create",
            help="Create a key and print it once.",
            description=(
                "Create a key. The key goes to stdout alone (for scripts), the "
                "note to stderr; it cannot be shown again."
            ),
        )
        create.add_argument(
            "--name", required=True, help="What the key is for (max. 50 characters)."
        )
        actions.add_parser(
            "list",
            help="List keys: prefix, name, dates and status; never the key itself.",
        )
        revoke = actions.add_parser(
            "revoke", help="Revoke a key for good (this cannot be undone)."
        )
        revoke.add_argument(
            "prefix", metavar="PREFIX", help="The key's prefix (the part before '.')."
        )

    def handle(self, *args, **options):
        try:
            action = {
                "create": self.create_key,
                "list": self.list_keys,
                "revoke": self.revoke_key,
            }[options["action"]]
            action(**options)
        except services.ServiceError as exc:
            raise CommandError(str(exc)) from exc

    def create_key(self, *, name, **options):
        api_key, key = apikeys.apikey_create(name=name)
        self.stderr.write(
            f'Created API key "{api_key.name}" (prefix {api_key.prefix}). '
            "Store it now: it cannot be shown again.",
            style_func=self.style.WARNING,
        )
        self.stdout.write(key)

    def list_keys(self, **options):
        keys = apikeys.apikey_list()
        if not keys:
            self.stdout.write("No API keys.")
            return
        rows = [("prefix", "name", "created", "last used", "status")]
        for key in keys:
            if key.revoked:
                status = "revoked"
            elif key.has_expired:
                status = "expired"
            elif key.expiry_date:
                status = f"active, expires {_when(key.expiry_date)}"
            else:
                status = "active"
            created, used = _when(key.created), _when(key.last_used_at)
            rows.append((key.prefix, key.name, created, used, status))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        for row in rows:
            cells = [cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True)]
            self.stdout.write("  ".join([*cells, row[4]]))

    def revoke_key(self, *, prefix, **options):
        api_key, revoked = apikeys.apikey_revoke(prefix=prefix)
        if revoked:
            self.stdout.write(f'Revoked API key {api_key.prefix} ("{api_key.name}").')
        else:
            self.stdout.write(
                f'API key {api_key.prefix} ("{api_key.name}") was already revoked.'
            )
