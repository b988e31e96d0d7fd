from http import HTTPStatus

import pytest
from django.core import signing

from likes.models import Like, Post

pytestmark = pytest.mark.django_db


def like(client, post="p", ip="192.0.2.1"):
    return client.post(f"/likes/{post}", REMOTE_ADDR=ip).json()


def unlike(client, post, receipt=None, body=None):
    headers = {"X-Like-Receipt": receipt} if receipt else {}
    if body is not None:
        return client.delete(
            f"/likes/{post}",
            data=body,
            content_type="application/json",
            headers=headers,
        )
    return client.delete(f"/likes/{post}", headers=headers)


def test_a_like_comes_with_a_receipt(client):
    body = like(client)

    assert isinstance(body["receipt"], str) and body["receipt"]


def test_unlike_with_the_receipt_removes_exactly_that_like(client):
    mine = like(client, ip="192.0.2.1")["receipt"]
    like(client, ip="192.0.2.2")

    response = unlike(client, "p", mine)

    assert response.status_code == HTTPStatus.OK
    assert response.json() == {"post_id": "p", "likes": 1, "liked": False}
    assert Post.objects.get().likes == 1
    assert Like.objects.count() == 1


def test_unlike_is_idempotent(client):
    receipt = like(client)["receipt"]
    like(client, ip="192.0.2.9")
    unlike(client, "p", receipt)

    again = unlike(client, "p", receipt)

    assert again.status_code == HTTPStatus.OK
    assert again.json()["likes"] == 1
    assert Post.objects.get().likes == 1


def test_receipt_in_a_json_body(client):
    receipt = like(client)["receipt"]

    response = unlike(client, "p", body={"receipt": receipt})

    assert response.json()["likes"] == 0


def test_unlike_never_goes_below_zero(client):
    receipt = like(client)["receipt"]
    Post.objects.filter(post_id="p").update(likes=0)  # corrected in the admin

    response = unlike(client, "p", receipt)

    assert response.status_code == HTTPStatus.OK
    assert Post.objects.get().likes == 0


def test_a_liker_can_like_again_after_unliking(client):
    receipt = like(client)["receipt"]
    unlike(client, "p", receipt)

    assert like(client)["likes"] == 1


@pytest.mark.parametrize(
    "forge",
    [
        lambda r: r[:-2] + ("AA" if not r.endswith("AA") else "BB"),  # tampered
        lambda r: signing.dumps([1, "p"], salt="another.salt"),  # other signer
        lambda r: signing.dumps([1, "p"], key="x" * 50, salt="likes.receipt"),
        lambda r: "garbage",
    ],
)
def test_forged_receipts_are_403_and_change_nothing(client, forge):
    receipt = like(client)["receipt"]

    response = unlike(client, "p", forge(receipt))

    assert response.status_code == HTTPStatus.FORBIDDEN
    assert response.json()["code"] == "invalid_receipt"
    assert Post.objects.get().likes == 1


def test_a_receipt_for_another_post_is_403(client):
    receipt = like(client, post="a")["receipt"]
    like(client, post="b")

    response = unlike(client, "b", receipt)

    assert response.status_code == HTTPStatus.FORBIDDEN
    assert Post.objects.get(post_id="b").likes == 1


@pytest.mark.parametrize(
    "body", [None, {}, {"receipt": 5}, {"receipt": ""}, ["x"], "not json"]
)
def test_missing_or_malformed_receipt_is_400(client, body):
    like(client)
    if body == "not json":
        response = client.delete(
            "/likes/p", data=b"{oops", content_type="application/json"
        )
    else:
        response = unlike(client, "p", body=body)

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "invalid_receipt"
    assert Post.objects.get().likes == 1


def test_oversized_body_is_refused_with_json(client):
    response = client.delete(
        "/likes/p", data=b"x" * 70_000, content_type="application/json"
    )

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response["Content-Type"] == "application/json"
