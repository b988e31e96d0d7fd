import pytest
from django.db import IntegrityError

from likes.models import Like, Post
from likes.services import like_add

pytestmark = pytest.mark.django_db


def test_like_add_creates_the_post_and_one_event():
    result = like_add(post_id="new")

    post = Post.objects.get(post_id="new")
    assert (result.post_id, result.likes) == ("new", 1)
    assert post.likes == 1
    assert post.last_liked_at is not None
    assert Like.objects.get().pk == result.like_id


def test_like_add_returns_the_count_after_this_like():
    Post.objects.create(post_id="old", likes=41)

    assert like_add(post_id="old").likes == 42


def test_database_refuses_a_negative_count():
    Post.objects.create(post_id="p", likes=0)

    with pytest.raises(IntegrityError):
        Post.objects.filter(post_id="p").update(likes=-1)


def test_top_orders_by_likes_then_id():
    for post_id, likes in [("b", 2), ("a", 2), ("c", 5)]:
        Post.objects.create(post_id=post_id, likes=likes)

    assert [p.post_id for p in Post.objects.top()] == ["c", "a", "b"]
    assert [p.post_id for p in Post.objects.top(1)] == ["c"]


def test_an_integrity_error_that_is_not_a_repeat_like_surfaces():
    # A broken statement (here: a NULL post id) must not pass for a duplicate.
    with pytest.raises(IntegrityError):
        like_add(post_id=None, visitor_hashes=["f" * 64])
    assert not Post.objects.exists()
