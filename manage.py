#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_site.settings.base")
    from django.core.management import execute_from_command_line

    if sys.argv[1:2] == ["runserver"]:
        # The development server traces like a gunicorn worker when
        # OTEL_EXPORTER_OTLP_ENDPOINT is set (a no-op otherwise).
        from gateway_site.observability import setup_tracing

        setup_tracing()

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
