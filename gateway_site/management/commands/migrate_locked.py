from django.core.management.commands import migrate

from gateway_site.dblock import migration_lock


class Command(migrate.Command):
    help = (
        "Run migrate while holding a database-wide lock, so that replicas "
        "starting at the same time apply migrations one after the other."
    )

    def handle(self, *args, **options):
        def on_wait():
            self.stdout.write("Another process is migrating; waiting for it.")

        with migration_lock(options["database"], on_wait=on_wait):
            super().handle(*args, **options)
