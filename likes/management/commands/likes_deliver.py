import os
import signal

from django.core.management.base import BaseCommand

from likes import webhooks


class Command(BaseCommand):
    help = (
        "Send the webhook events that are due (likes/webhooks.py). Runs until "
        "stopped (SIGTERM, SIGINT), sending every LIKES_WEBHOOK_POLL_SECONDS; "
        "with --once, sends what is due now and exits. Several may run: each row "
        "is sent by one of them at a time. With LIKES_WEBHOOK_DELIVERY=auto "
        "(the default) gunicorn runs one beside its workers."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--once", action="store_true", help="Send what is due now, then exit."
        )
        parser.add_argument(
            "--nice",
            type=int,
            default=0,
            help="Lower this process's CPU priority by N (gunicorn starts it with "
            "10: under load, the web workers come first).",
        )

    def handle(self, *args, once=False, nice=0, **options):
        if nice > 0:
            os.nice(nice)
        sender = webhooks.Sender()
        if once:
            delivered = sender.round(force=True)
            self.stdout.write(f"Delivered {delivered} event(s).")
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: sender.stop())
        self.stdout.write("Sending webhook events; stop with Ctrl-C.")
        sender.run()
