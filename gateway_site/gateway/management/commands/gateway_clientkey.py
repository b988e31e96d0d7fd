"""Client HMAC keys of the gateway: create (prints the secret once), list, revoke."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from gateway_site.gateway.clientkeys import derive_secret
from gateway_site.gateway.models import ClientKey


class Command(BaseCommand):
    help = "Manage the gateway's client HMAC keys."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Make a key; prints its id and secret.")
        create.add_argument("--name", required=True)
        create.add_argument("--user", required=True, help="The user the key acts as.")
        sub.add_parser("list", help="Show every key (never a secret).")
        revoke = sub.add_parser("revoke", help="Revoke a key for good.")
        revoke.add_argument("key_id")

    def handle(self, *args, action, **options):
        if action == "create":
            user_model = get_user_model()
            try:
                user = user_model._default_manager.get_by_natural_key(options["user"])
            except user_model.DoesNotExist:
                raise CommandError(f"No user {options['user']!r}.") from None
            key = ClientKey.objects.create(name=options["name"], user=user)
            # Id and secret on one line each, so a script can read them.
            self.stdout.write(key.key_id)
            self.stdout.write(derive_secret(key.key_id, key.salt))
            self.stderr.write("Keep the secret now: it is not shown again.")
        elif action == "list":
            for key in ClientKey.objects.select_related("user").order_by("created_at"):
                status = "active" if key.is_active else "revoked"
                used = key.last_used_at.isoformat() if key.last_used_at else "never"
                self.stdout.write(
                    f"{key.key_id}\t{key.name}\t{key.user}\t{status}\tlast used {used}"
                )
        else:
            revoked = ClientKey.objects.filter(key_id=options["key_id"]).first()
            if revoked is None:
                raise CommandError(f"No key {options['key_id']!r}.")
            revoked.is_active = False
            revoked.save(update_fields=["is_active"])
            self.stdout.write(f"Revoked {revoked.key_id}.")
