import hashlib
import uuid
from dataclasses import dataclass

from django.db import connections, models
from django.utils import timezone
from django.utils.crypto import constant_time_compare, get_random_string
from django.utils.translation import gettext_lazy as _
from rest_framework_api_key.crypto import KeyGenerator
from rest_framework_api_key.models import AbstractAPIKey, BaseAPIKeyManager

from likes.validators import POST_ID_MAX_LENGTH, POST_TITLE_MAX_LENGTH


@dataclass(frozen=True, slots=True)
class PostCount:
    post_id: str
    likes: int


@dataclass(frozen=True, slots=True)
class Stats:
    top: list[PostCount]
    posts: int
    likes: int


# The site every install has (migration likes.0008): its posts are those of a
# single-site install, its origins CORS_ORIGINS plus its own.
DEFAULT_SITE_ID = 1


class Site(models.Model):
    """A blog served by this instance: its origins, reactions and posts."""

    name = models.CharField(_("name"), max_length=100)
    slug = models.SlugField(
        _("slug"),
        max_length=50,
        unique=True,
        help_text=_("The widget's data-site, the commands' --site."),
    )
    origins = models.TextField(
        _("origins"),
        blank=True,
        default="",
        help_text=_(
            "The blog's origins, one per line (https://blog.example.com); the "
            "default site also takes CORS_ORIGINS."
        ),
    )
    reactions = models.CharField(
        _("reactions"),
        max_length=300,
        blank=True,
        default="",
        help_text=_(
            "Up to 8 emoji or short names, comma-separated; empty: LIKES_REACTIONS."
        ),
    )
    post_id_pattern = models.CharField(
        _("post id rule"),
        max_length=200,
        blank=True,
        default="",
        help_text=_(
            "A regular expression every post id of this site must match whole "
            "(e.g. [a-z0-9-]+); empty: any valid post id."
        ),
    )
    popular_public = models.BooleanField(
        _("public popular list"),
        default=True,
        help_text=_("Whether GET /api/popular answers for this site."),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("site")
        verbose_name_plural = _("sites")
        ordering = ("pk",)

    def __str__(self):
        return self.name

    @property
    def is_default(self) -> bool:
        return self.pk == DEFAULT_SITE_ID

    def origin_list(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.origins.replace(",", "\n").split()]


class PostQuerySet(models.QuerySet):
    # The two reads behind every page view run as plain SQL: building the same
    # ORM query on each request cost more than the query itself (see the
    # benchmark in tests/benchmarks).
    def _counts(self, post_ids, site_id: int) -> dict[str, int]:
        connection = connections[self.db]
        table = connection.ops.quote_name(self.model._meta.db_table)
        marks = ", ".join(["%s"] * len(post_ids))
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT post_id, likes FROM {table} "
                f"WHERE site_id = %s AND post_id IN ({marks})",
                [site_id, *post_ids],
            )
            return dict(cursor.fetchall())

    def count_for(self, post_id: str, site_id: int = DEFAULT_SITE_ID) -> int:
        """Return the like count of one post; 0 when it has never been liked."""
        return self._counts([post_id], site_id).get(post_id, 0)

    def counts_for(self, post_ids, site_id: int = DEFAULT_SITE_ID) -> dict[str, int]:
        """Return ``{post_id: likes}`` for the given ids, 0 for unknown ones."""
        found = self._counts(post_ids, site_id) if post_ids else {}
        return {post_id: found.get(post_id, 0) for post_id in post_ids}

    def reactions_for(
        self, post_ids, kinds, site_id: int = DEFAULT_SITE_ID
    ) -> dict[str, dict[str, int]]:
        """``{post_id: {kind: count}}`` for the given ids and reactions, 0 for
        none yet (the site's reactions, in their order)."""
        found: dict[str, dict[str, int]] = {}
        if post_ids and kinds:
            connection = connections[self.db]
            quote = connection.ops.quote_name
            posts = quote(self.model._meta.db_table)
            counts = quote(PostReaction._meta.db_table)
            marks = ", ".join(["%s"] * len(post_ids))
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT p.post_id, r.kind, r.count FROM {counts} r "
                    f"JOIN {posts} p ON p.id = r.post_id "
                    f"WHERE p.site_id = %s AND p.post_id IN ({marks})",
                    [site_id, *post_ids],
                )
                for post_id, kind, count in cursor.fetchall():
                    found.setdefault(post_id, {})[kind] = count
        return {
            post_id: {kind: found.get(post_id, {}).get(kind, 0) for kind in kinds}
            for post_id in post_ids
        }

    def top(self, n: int | None = None):
        """Posts by likes, most liked first; ties by id so the order is stable."""
        ordered = self.order_by("-likes", "post_id")
        return ordered if n is None else ordered[:n]

    def stats(self, limit: int | None = None) -> Stats:
        """The ``limit`` most liked of these posts (None: all) and their totals."""
        totals = self.aggregate(posts=models.Count("pk"), likes=models.Sum("likes"))
        top = [
            PostCount(post_id=post_id, likes=likes)
            for post_id, likes in self.top(limit).values_list("post_id", "likes")
        ]
        return Stats(top=top, posts=totals["posts"], likes=totals["likes"] or 0)


class Post(models.Model):
    site = models.ForeignKey(
        Site,
        on_delete=models.PROTECT,
        related_name="posts",
        verbose_name=_("site"),
        default=DEFAULT_SITE_ID,
        db_default=DEFAULT_SITE_ID,
    )
    post_id = models.CharField(_("post id"), max_length=POST_ID_MAX_LENGTH)
    # The page title the widget sent with the latest counted like; display only.
    title = models.CharField(
        _("title"),
        max_length=POST_TITLE_MAX_LENGTH,
        blank=True,
        default="",
        db_default="",
    )
    likes = models.BigIntegerField(_("likes"), default=0)
    # The part of ``likes`` that came from likes_import: re-importing a file
    # replaces this part and keeps the likes counted here since.
    imported = models.BigIntegerField(_("imported likes"), default=0)
    created_at = models.DateTimeField(_("first seen"), default=timezone.now)
    last_liked_at = models.DateTimeField(_("last liked"), null=True, blank=True)

    objects = PostQuerySet.as_manager()

    class Meta:
        verbose_name = _("post")
        verbose_name_plural = _("posts")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(likes__gte=0), name="likes_post_likes_gte_0"
            ),
            models.CheckConstraint(
                condition=models.Q(imported__gte=0), name="likes_post_imported_gte_0"
            ),
            # Post ids are unique per site.
            models.UniqueConstraint(
                fields=["site", "post_id"], name="likes_post_site_post_id"
            ),
        ]
        indexes = [
            models.Index(fields=["site", "-likes", "post_id"], name="likes_post_top")
        ]

    def __str__(self):
        return self.post_id


class LikeQuerySet(models.QuerySet):
    def likes(self):
        """The likes themselves, without the reactions."""
        return self.filter(kind="")

    def reactions(self):
        return self.exclude(kind="")


class Like(models.Model):
    """One accepted like (or reaction): the history behind a post's counters."""

    post = models.ForeignKey(
        Post, on_delete=models.CASCADE, related_name="events", verbose_name=_("post")
    )
    created_at = models.DateTimeField(_("liked at"), default=timezone.now)
    # Keyed hash of the visitor for dedupe; never the raw IP or User-Agent.
    visitor_hash = models.CharField(_("visitor hash"), max_length=64, blank=True)
    # "" for the like itself, else the reaction (likes/reactions.py) it counted.
    kind = models.CharField(
        _("reaction"), max_length=32, blank=True, default="", db_default=""
    )

    objects = LikeQuerySet.as_manager()

    class Meta:
        verbose_name = _("like")
        verbose_name_plural = _("likes")
        constraints = [
            # One like per visitor and post while the hash is kept; the hash
            # covers the post id, so the hash alone is unique.
            models.UniqueConstraint(
                fields=["visitor_hash"],
                condition=~models.Q(visitor_hash=""),
                name="likes_like_visitor_hash_unique",
            ),
        ]
        indexes = [
            models.Index(fields=["created_at"], name="likes_like_created"),
            models.Index(fields=["post", "created_at"], name="likes_like_post_created"),
        ]

    def __str__(self):
        return f"{self.post_id} @ {self.created_at:%Y-%m-%d %H:%M}"


class PostReaction(models.Model):
    """How many of one reaction a post has (the like's count is ``Post.likes``)."""

    post = models.ForeignKey(
        Post, on_delete=models.CASCADE, related_name="reactions", verbose_name=_("post")
    )
    kind = models.CharField(_("reaction"), max_length=32)
    count = models.BigIntegerField(_("count"), default=0)

    class Meta:
        verbose_name = _("reaction count")
        verbose_name_plural = _("reaction counts")
        constraints = [
            models.UniqueConstraint(
                fields=["post", "kind"], name="likes_postreaction_post_kind"
            ),
            models.CheckConstraint(
                condition=models.Q(count__gte=0), name="likes_postreaction_count_gte_0"
            ),
        ]

    def __str__(self):
        return f"{self.post_id} {self.kind}"


class DedupeSalt(models.Model):
    """The random key of one UTC day's visitor hashes; deleted after 48 h."""

    day = models.DateField(_("day"), unique=True)
    secret = models.CharField(_("secret"), max_length=64)

    class Meta:
        verbose_name = _("dedupe salt")
        verbose_name_plural = _("dedupe salts")

    def __str__(self):
        return str(self.day)


class SaltedKeyGenerator(KeyGenerator):
    """API keys hashed as SHA-256 of a per-key random salt and the key."""

    algorithm = "sha256-salted"

    def hash(self, value: str) -> str:
        salt = get_random_string(16)
        digest = hashlib.sha256((salt + value).encode()).hexdigest()
        return f"{self.algorithm}${salt}${digest}"

    def using_preferred_hasher(self, hashed_key: str) -> bool:
        return hashed_key.startswith(f"{self.algorithm}$")

    def verify(self, key: str, hashed_key: str) -> bool:
        algorithm, _, rest = hashed_key.partition("$")
        salt, _, digest = rest.partition("$")
        if algorithm != self.algorithm or not salt or not digest:
            return False
        candidate = hashlib.sha256((salt + key).encode()).hexdigest()
        return constant_time_compare(candidate, digest)


class APIKeyManager(BaseAPIKeyManager):
    key_generator = SaltedKeyGenerator(prefix_length=8, secret_key_length=40)


class APIKey(AbstractAPIKey):
    """A key for the stats API. Only its prefix and a salted hash are stored."""

    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    # The site whose stats it reads; none: any site (``?site=``, else the default).
    site = models.ForeignKey(
        Site,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="api_keys",
        verbose_name=_("site"),
        help_text=_("Empty: every site."),
    )

    objects = APIKeyManager()

    class Meta(AbstractAPIKey.Meta):
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")


WEBHOOK_EVENTS = ("like.created", "like.removed", "milestone.reached", "daily.digest")


def default_webhook_events() -> list[str]:
    return ["like.created", "milestone.reached"]


class Webhook(models.Model):
    """A receiver of events, signed with a secret derived for it."""

    name = models.CharField(_("name"), max_length=100)
    url = models.URLField(_("URL"), max_length=500)
    events = models.JSONField(_("events"), default=default_webhook_events)
    milestones = models.CharField(
        _("milestones"),
        max_length=200,
        default="10,100,1000",
        blank=True,
        help_text=_("Like counts that send milestone.reached, comma-separated."),
    )
    active = models.BooleanField(_("active"), default=True)
    site = models.ForeignKey(
        Site,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="webhooks",
        verbose_name=_("site"),
        help_text=_("Empty: the events of every site."),
    )
    # Its secret is derived from DJANGO_SECRET_KEY and this (never stored).
    key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("webhook")
        verbose_name_plural = _("webhooks")

    def __str__(self):
        return self.name

    def milestone_counts(self) -> frozenset[int]:
        counts = set()
        for part in self.milestones.split(","):
            if part.strip().isdigit():
                counts.add(int(part))
        return frozenset(counts)


class Delivery(models.Model):
    """One event for one webhook: the outbox row, written with the change."""

    PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
    STATUSES = [
        (PENDING, _("pending")),
        (DELIVERED, _("delivered")),
        (FAILED, _("failed")),
    ]

    # Few indexes: each is written by every like while a webhook is active.
    webhook = models.ForeignKey(
        Webhook,
        on_delete=models.CASCADE,
        related_name="deliveries",
        verbose_name=_("webhook"),
        db_index=False,
    )
    event = models.CharField(_("event"), max_length=32)
    # Random (122 bits): unique without an index to prove it.
    event_id = models.UUIDField(default=uuid.uuid4, editable=False)
    payload = models.TextField(_("payload"))
    # One milestone per post and count, one digest per day, whatever happens.
    once = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    status = models.CharField(
        _("status"), max_length=10, choices=STATUSES, default=PENDING
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), default=timezone.now)
    # A sender's claim: nobody else sends this row until then.
    claimed_until = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=32, blank=True)
    last_status = models.PositiveIntegerField(_("last HTTP status"), null=True)
    last_error = models.CharField(_("last error"), max_length=200, blank=True)
    delivered_at = models.DateTimeField(_("delivered"), null=True, blank=True)

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        constraints = [
            models.UniqueConstraint(
                fields=["once"],
                condition=~models.Q(once=""),
                name="likes_delivery_once",
            ),
        ]
        indexes = [
            # What a sender looks for; a row leaves it once sent.
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status="pending"),
                name="likes_delivery_due",
            ),
        ]

    def __str__(self):
        return f"{self.event} → {self.webhook}"
