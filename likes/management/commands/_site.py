"""The ``--site`` option the likes commands share."""

from django.core.management.base import CommandError

from likes import sites


def add_site_argument(parser) -> None:
    parser.add_argument(
        "--site",
        metavar="SLUG",
        help="The site (its slug in the admin); default: the default site.",
    )


def site_of(options) -> sites.SiteInfo:
    try:
        return sites.named(options.get("site"))
    except sites.UnknownSite as exc:
        raise CommandError(f"No site {str(exc)!r}.") from None
