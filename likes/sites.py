"""Which site a request is for: by its ``Origin``, or the ``site`` it names.

One instance serves several blogs (``Site``, in the admin). A widget's request
carries its page's ``Origin``: the site whose origins include it is the
request's; a widget may also name its site (``data-site``, sent as ``?site=``).
A request with no ``Origin`` and no ``site`` (curl, a server) is for the
default site, as is everything on a single-site install, where nothing changes:
the default site's origins are ``CORS_ORIGINS`` plus its own.

Sites are read from the database at most every ``REFRESH_SECONDS`` per process
(and at once after a save in this process): an edit in the admin reaches every
worker within that time.
"""

import re
import threading
import time
from dataclasses import dataclass

from corsheaders.conf import conf as cors
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from likes import reactions as reaction_sets
from likes.models import DEFAULT_SITE_ID, Site

REFRESH_SECONDS = 5.0
ORIGIN = re.compile(r"https?://[^/?#\s]+")


@dataclass(frozen=True, slots=True)
class SiteInfo:
    """What a request needs of its site, read once per refresh."""

    id: int
    slug: str
    name: str
    origins: frozenset[str]
    reactions: str  # the site's list; empty: LIKES_REACTIONS
    popular_public: bool
    post_ids: re.Pattern | None = None  # the ids it takes; None: any valid one

    @property
    def is_default(self) -> bool:
        return self.id == DEFAULT_SITE_ID

    def kinds(self) -> tuple[str, ...]:
        """The site's reactions, in their order (empty: none)."""
        return reaction_sets.configured(self.reactions)

    def resolve(self, name) -> str | None:
        return reaction_sets.resolve(name, self.reactions)

    def post_id_error(self, post_id: str) -> str | None:
        """Why a (valid) post id is not one of this site's, or None."""
        if self.post_ids is None or self.post_ids.fullmatch(post_id):
            return None
        return f"post_id is not one of this site's (its rule: {self.post_ids.pattern})."

    def allows(self, origin: str) -> bool:
        if origin in self.origins:
            return True
        return self.is_default and cors_allows(origin)


DEFAULT = SiteInfo(DEFAULT_SITE_ID, "default", "Default site", frozenset(), "", True)


def cors_allows(origin: str) -> bool:
    """Whether CORS_ORIGINS (the default site's, from the environment) has it."""
    if cors.CORS_ALLOW_ALL_ORIGINS or origin in cors.CORS_ALLOWED_ORIGINS:
        return True
    return any(re.match(p, origin) for p in cors.CORS_ALLOWED_ORIGIN_REGEXES)


def compile_rule(pattern: str) -> re.Pattern | None:
    """A site's post-id rule (an invalid one, which the admin refuses, takes all)."""
    if not pattern:
        return None
    try:
        return re.compile(pattern)
    except re.error:
        return None


class Registry:
    def __init__(self):
        self._lock = threading.Lock()
        self._loaded_at = -REFRESH_SECONDS
        self.by_slug: dict[str, SiteInfo] = {}
        self.by_id: dict[int, SiteInfo] = {}
        self.by_origin: dict[str, SiteInfo] = {}
        self.default = DEFAULT

    def forget(self) -> None:
        self._loaded_at = -REFRESH_SECONDS

    def fresh(self) -> "Registry":
        if time.monotonic() - self._loaded_at >= REFRESH_SECONDS:
            with self._lock:
                if time.monotonic() - self._loaded_at >= REFRESH_SECONDS:
                    self._load()
        return self

    def _load(self) -> None:
        by_slug, by_id, by_origin, default = {}, {}, {}, DEFAULT
        for site in Site.objects.order_by("pk"):
            info = SiteInfo(
                id=site.pk,
                slug=site.slug,
                name=site.name,
                origins=frozenset(site.origin_list()),
                reactions=site.reactions,
                popular_public=site.popular_public,
                post_ids=compile_rule(site.post_id_pattern),
            )
            by_slug[info.slug] = info
            by_id[info.id] = info
            for origin in info.origins:
                by_origin.setdefault(origin, info)
            if info.is_default:
                default = info
        self.by_slug, self.by_id = by_slug, by_id
        self.by_origin, self.default = by_origin, default
        self._loaded_at = time.monotonic()


registry = Registry()


@receiver(post_save, sender=Site)
@receiver(post_delete, sender=Site)
def _site_changed(**kwargs):
    registry.forget()


class UnknownSite(Exception):
    """A request named a site this instance does not have."""


def of_request(request) -> SiteInfo:
    """The site a request is for (UnknownSite when it names one there is none of)."""
    found = getattr(request, "_likes_site", None)
    if found is not None:
        return found
    sites = registry.fresh()
    named = request.GET.get("site")
    if named:
        found = sites.by_slug.get(named)
        if found is None:
            raise UnknownSite(named)
    else:
        origin = request.META.get("HTTP_ORIGIN")
        found = (origin and sites.by_origin.get(origin)) or sites.default
    request._likes_site = found
    return found


def named(slug: str | None) -> SiteInfo:
    """The site of a command's ``--site`` (None: the default)."""
    sites = registry.fresh()
    if not slug:
        return sites.default
    found = sites.by_slug.get(slug)
    if found is None:
        raise UnknownSite(slug)
    return found


def create_default_site(using="default", apps=None, **kwargs) -> None:
    """Make the default site if it is missing (after ``migrate`` or a flush)."""
    from django.core.management.color import no_style
    from django.db import connections

    model = Site if apps is None else apps.get_model("likes", "Site")
    _, created = model.objects.using(using).get_or_create(
        pk=DEFAULT_SITE_ID, defaults={"name": "Default site", "slug": "default"}
    )
    if created:
        connection = connections[using]
        with connection.cursor() as cursor:
            for sql in connection.ops.sequence_reset_sql(no_style(), [model]):
                cursor.execute(sql)
    registry.forget()


def named_by_id(site_id: int) -> SiteInfo:
    """A site by its id (one made in the last seconds may not be known yet:
    the default then)."""
    sites = registry.fresh()
    return sites.by_id.get(site_id) or sites.default


def origin_allowed_anywhere(origin: str) -> bool:
    """Whether any site takes requests from ``origin`` (CORS)."""
    return origin in registry.fresh().by_origin or cors_allows(origin)


def cors_signal(sender, request, **kwargs) -> bool:
    """django-cors-headers: let the origins of every site through (its
    CORS_URLS_REGEX still limits CORS to the public API)."""
    origin = request.headers.get("origin")
    return bool(origin) and origin in registry.fresh().by_origin
