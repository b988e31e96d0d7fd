"""One post per canonical id: post ids become their NFC form.

Posts whose ids differ only in Unicode normalisation (the composed and the
decomposed "café") are merged into the NFC spelling: counts and imported
counts add up, their like history moves, the earliest first-seen and latest
last-liked dates are kept. Each merge or rename is logged in the post's admin
history (attributed to the first superuser, if there is one) and printed.
"""

import unicodedata

from django.db import migrations
from django.db.models import F

MESSAGE = "Merged {sources} into {target}: one post per canonical (NFC) id"


def merge_equivalent_ids(apps, schema_editor):
    Post = apps.get_model("likes", "Post")
    Like = apps.get_model("likes", "Like")
    spellings: dict[str, list] = {}
    for post in Post.objects.order_by("pk"):
        canonical = unicodedata.normalize("NFC", post.post_id)
        spellings.setdefault(canonical, []).append(post)
    for canonical, posts in spellings.items():
        target = next((p for p in posts if p.post_id == canonical), None)
        sources = [p for p in posts if p is not target]
        if not sources:
            continue  # already canonical, alone
        if target is None:
            target = sources.pop(0)
            old = target.post_id
            target.post_id = canonical
            target.save(update_fields=["post_id"])
            log(apps, target, f"Renamed {old!r} to {canonical!r} (NFC)")
            if not sources:
                continue
        for source in sources:
            Like.objects.filter(post_id=source.pk).update(post_id=target.pk)
        Post.objects.filter(pk=target.pk).update(
            likes=F("likes") + sum(p.likes for p in sources),
            imported=F("imported") + sum(p.imported for p in sources),
        )
        target.refresh_from_db()
        first = min([target.created_at, *(p.created_at for p in sources)])
        dates = [target.last_liked_at, *(p.last_liked_at for p in sources)]
        last = max([d for d in dates if d], default=None)
        Post.objects.filter(pk=target.pk).update(created_at=first, last_liked_at=last)
        Post.objects.filter(pk__in=[p.pk for p in sources]).delete()
        log(
            apps,
            target,
            MESSAGE.format(
                sources=", ".join(repr(p.post_id) for p in sources),
                target=repr(canonical),
            ),
        )


def log(apps, post, message: str) -> None:
    print(f"  likes: {message}")
    User = apps.get_model("auth", "User")
    LogEntry = apps.get_model("admin", "LogEntry")
    ContentType = apps.get_model("contenttypes", "ContentType")
    user = User.objects.filter(is_superuser=True).order_by("pk").first()
    if user is None:
        return
    content_type, _ = ContentType.objects.get_or_create(app_label="likes", model="post")
    LogEntry.objects.create(
        user_id=user.pk,
        content_type_id=content_type.pk,
        object_id=str(post.pk),
        object_repr=post.post_id[:200],
        action_flag=2,  # CHANGE
        change_message=message,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("likes", "0003_post_imported"),
        ("admin", "0003_logentry_add_action_flag_choices"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(merge_equivalent_ids, migrations.RunPython.noop),
    ]
