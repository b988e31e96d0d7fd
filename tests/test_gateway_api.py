"""POST /gateway: the envelope endpoint of the data plane, against real upstreams."""

import json
from http import HTTPStatus

import pytest

from gateway_site.gateway.tokens import GatewayAccessToken

# The data plane reads users on a thread of its own: committed rows only.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def auth(django_user_model):
    user = django_user_model.objects.create_user("ada", password="x-long-pass")

    return {"Authorization": f"Bearer {GatewayAccessToken.for_user(user)}"}


def call(gw, auth, **body):
    return gw.post("/gateway", json=body, headers=auth)


def test_post_routes_to_the_service_and_wraps_its_answer(gw, auth, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])
    response = call(
        gw,
        auth,
        service_name=name,
        endpoint="/process?x=1",
        method="POST",
        payload={"image": "abc"},
    )
    assert response.status_code == HTTPStatus.OK
    data = response.json()
    assert data["status_code"] == 200
    assert data["data"]["path"] == "/process?x=1"
    assert data["data"]["body"] == '{"image":"abc"}'
    seen = up.received[-1]["headers"]
    assert seen["Content-Type"] == "application/json"
    assert "Authorization" not in seen  # the gateway's token stays here


def test_upstream_status_is_reported_in_the_envelope(gw, auth, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])
    response = call(gw, auth, service_name=name, endpoint="/status/404")
    assert response.status_code == HTTPStatus.OK
    assert response.json() == {"status_code": 404, "data": {"status": "set"}}


def test_jwt_is_required(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])
    response = gw.post("/gateway", json={"service_name": name, "endpoint": "/x"})
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert set(response.json()) == {"detail", "code"}
    assert up.received == []


def test_a_tampered_token_is_refused(gw, auth, gateway, upstreams):
    name = gateway([upstreams().url])
    token = auth["Authorization"]
    tampered = {"Authorization": token[:-2] + ("AA" if token[-2:] != "AA" else "BB")}
    response = call(gw, tampered, service_name=name, endpoint="/x")
    assert response.status_code == HTTPStatus.UNAUTHORIZED


def test_unknown_service_is_404(gw, auth, gateway, upstreams):
    gateway([upstreams().url])
    response = call(gw, auth, service_name="nope", endpoint="/x")
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response.json()["code"] == "unknown_service"


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://evil.example/x",
        "//evil.example/x",
        "x",
        "/a/../b",
        "",
        "/%2e%2e/admin",
        "/..%2fadmin",
        "/..;/admin",
    ],
)
def test_endpoint_must_be_a_plain_path(gw, auth, gateway, upstreams, endpoint):
    up = upstreams()
    name = gateway([up.url])
    response = call(gw, auth, service_name=name, endpoint=endpoint)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert up.received == []


def test_dead_service_is_502_naming_it(gw, auth, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url], max_retries=0)
    up.kill()
    response = call(gw, auth, service_name=name, endpoint="/x")
    assert response.status_code == HTTPStatus.BAD_GATEWAY
    assert response.json()["service"] == name


def test_an_empty_answer_is_an_empty_object(gw, auth, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])
    response = call(gw, auth, service_name=name, endpoint="/x", method="HEAD")
    assert response.json() == {"status_code": 200, "data": {}}


@pytest.mark.parametrize(
    ("authorization", "code"),
    [("Bearer", "bad_authorization_header"), ("Bearer abc.def.ghi", "token_not_valid")],
)
def test_token_errors_are_plain_json_errors(gw, authorization, code):
    response = gw.post("/gateway", json={}, headers={"Authorization": authorization})
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    body = response.json()
    assert body["code"] == code
    assert "ErrorDetail" not in body["detail"]


def test_request_id_and_trace_context_reach_the_service(gw, auth, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    call(
        gw,
        {**auth, "X-Request-ID": "rid-42", "traceparent": traceparent},
        service_name=name,
        endpoint="/x",
    )
    seen = up.received[-1]["headers"]
    assert seen["X-Request-ID"] == "rid-42"
    assert seen["traceparent"] == traceparent
    assert seen["X-Forwarded-For"] == "127.0.0.1"


def test_the_payload_keeps_non_ascii_text(gw, auth, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])

    call(gw, auth, service_name=name, endpoint="/x", method="PUT", payload={"t": "é"})

    assert json.loads(up.received[-1]["body"]) == {"t": "é"}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"[" * 5000 + b"]" * 5000, "parse_error"),
        (
            b'{"service_name": "x", "endpoint": "/x", "method": "\\ud800"}',
            "parse_error",
        ),
        (b"{not json", "parse_error"),
        (b'"a string"', "invalid"),
        (b'{"service_name": 5, "endpoint": "/x"}', "invalid"),
        (b'{"service_name": "x", "endpoint": "/x", "method": "BREW"}', "invalid"),
    ],
)
def test_bad_bodies_are_400_json(gw, auth, gateway, upstreams, body, code):
    up = upstreams()
    gateway([up.url])

    response = gw.post(
        "/gateway", content=body, headers={**auth, "Content-Type": "application/json"}
    )

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == code
    assert up.received == []


def test_a_body_that_is_not_json_is_415(gw, auth, gateway, upstreams):
    gateway([upstreams().url])

    response = gw.post(
        "/gateway", content=b"a=b", headers={**auth, "Content-Type": "text/plain"}
    )

    assert response.status_code == HTTPStatus.UNSUPPORTED_MEDIA_TYPE


def test_other_methods_are_405(gw, auth, gateway, upstreams):
    gateway([upstreams().url])

    response = gw.get("/gateway", headers=auth)

    assert response.status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert response.headers["Allow"] == "POST"


def test_a_new_password_revokes_tokens_in_the_data_plane_at_once(
    gw, auth, gateway, upstreams, django_user_model
):
    name = gateway([upstreams().url])
    assert call(gw, auth, service_name=name, endpoint="/x").status_code == 200

    user = django_user_model.objects.get(username="ada")
    user.set_password("another-long-pass")
    user.save()
    response = call(gw, auth, service_name=name, endpoint="/x")

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response.json()["code"] == "token_revoked"


def test_deactivating_a_user_refuses_their_token_in_the_data_plane_at_once(
    gw, auth, gateway, upstreams, django_user_model
):
    name = gateway([upstreams().url])
    proxied = f"/services/{name}/x"
    assert gw.get(proxied, headers=auth).status_code == 200  # state now cached

    user = django_user_model.objects.get(username="ada")
    user.is_active = False
    user.save()
    refused = gw.get(proxied, headers=auth)

    assert refused.status_code == HTTPStatus.UNAUTHORIZED
    assert refused.json()["code"] == "user_inactive"


def test_deleting_a_user_refuses_their_token_in_the_data_plane_at_once(
    gw, auth, gateway, upstreams, django_user_model
):
    name = gateway([upstreams().url])
    proxied = f"/services/{name}/x"
    assert gw.get(proxied, headers=auth).status_code == 200  # state now cached

    django_user_model.objects.get(username="ada").delete()
    refused = gw.get(proxied, headers=auth)

    assert refused.status_code == HTTPStatus.UNAUTHORIZED
    assert refused.json()["code"] == "user_not_found"
