import gzip
import time
from http import HTTPStatus

import pytest


def hits(response) -> int:
    return response.json()["hits"]


def test_second_get_is_a_hit_served_without_the_upstream(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])
    first = gw.get(f"/services/{name}/catalog")
    second = gw.get(f"/services/{name}/catalog")
    assert first.headers["X-Cache-Status"] == "MISS"
    assert second.headers["X-Cache-Status"] == "HIT"
    assert first.content == second.content
    assert second.headers["Content-Type"] == "application/json"
    assert len(up.received) == 1


def test_entries_expire_after_their_ttl(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url], default_ttl=1)
    assert hits(gw.get(f"/services/{name}/catalog")) == 1
    assert gw.get(f"/services/{name}/catalog").headers["X-Cache-Status"] == "HIT"
    time.sleep(1.2)
    response = gw.get(f"/services/{name}/catalog")
    assert response.headers["X-Cache-Status"] == "MISS"
    assert hits(response) == 2


def test_processing_results_use_their_strategy_ttl(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url], default_ttl=1, results_ttl=60)
    gw.get(f"/services/{name}/results/42")
    time.sleep(1.2)
    assert gw.get(f"/services/{name}/results/42").headers["X-Cache-Status"] == "HIT"


@pytest.mark.parametrize("header", ["Authorization", "Cookie"])
def test_user_specific_requests_bypass_the_cache(gw, gateway, upstreams, header):
    up = upstreams()
    name = gateway([up.url])
    gw.get(f"/services/{name}/me")  # an anonymous answer is cached
    response = gw.get(f"/services/{name}/me", headers={header: "user-a"})
    assert response.headers["X-Cache-Status"] == "BYPASS"
    assert hits(response) == 2  # not the anonymous copy
    again = gw.get(f"/services/{name}/me", headers={header: "user-b"})
    assert hits(again) == 3  # nor user a's


@pytest.mark.parametrize("control", ["no-store", "private", "no-cache"])
def test_upstream_cache_control_is_respected(gw, gateway, upstreams, control):
    up = upstreams()
    name = gateway([up.url])
    first = gw.get(f"/services/{name}/live?cc={control}")
    second = gw.get(f"/services/{name}/live?cc={control}")
    assert (
        first.headers["X-Cache-Status"] == second.headers["X-Cache-Status"] == "BYPASS"
    )
    assert len(up.received) == 2


def test_max_age_shortens_the_ttl(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])
    gw.get(f"/services/{name}/short?cc=max-age=1")
    assert (
        gw.get(f"/services/{name}/short?cc=max-age=1").headers["X-Cache-Status"]
        == "HIT"
    )
    time.sleep(1.2)
    assert (
        gw.get(f"/services/{name}/short?cc=max-age=1").headers["X-Cache-Status"]
        == "MISS"
    )


def test_non_200_and_non_get_bypass(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])
    for _ in range(2):
        assert (
            gw.get(f"/services/{name}/status/404").headers["X-Cache-Status"] == "BYPASS"
        )
        assert gw.post(f"/services/{name}/x").headers["X-Cache-Status"] == "BYPASS"
    assert len(up.received) == 4


def test_query_string_is_part_of_the_key(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])
    gw.get(f"/services/{name}/search?q=a")
    response = gw.get(f"/services/{name}/search?q=b")
    assert response.headers["X-Cache-Status"] == "MISS"
    assert response.status_code == HTTPStatus.OK


def test_encoded_bodies_are_stored_and_served_as_encoded(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])
    headers = {"Accept-Encoding": "gzip"}
    first = gw.get(f"/services/{name}/gzip", headers=headers)
    second = gw.get(f"/services/{name}/gzip", headers=headers)
    assert (first.headers["X-Cache-Status"], second.headers["X-Cache-Status"]) == (
        "MISS",
        "HIT",
    )
    packed = gzip.compress(b'{"packed": true}')
    for response in (first, second):
        assert response.headers["Content-Encoding"] == "gzip"
        # Stored and sent compressed; httpx decodes it here.
        assert int(response.headers["Content-Length"]) == len(packed)
        assert response.json() == {"packed": True}


def test_a_caller_cannot_make_a_plain_caller_receive_its_variant(
    gw, gateway, upstreams
):
    up = upstreams()
    name = gateway([up.url])

    # A header the service might answer differently to: not cached...
    poisoned = gw.get(f"/services/{name}/page", headers={"X-Api-Version": "evil"})
    plain = gw.get(f"/services/{name}/page")
    again = gw.get(f"/services/{name}/page")

    assert poisoned.headers["X-Cache-Status"] == "BYPASS"
    # ...so the plain caller gets the service's own answer, then its cached copy.
    assert plain.headers["X-Cache-Status"] == "MISS"
    assert again.headers["X-Cache-Status"] == "HIT"
    assert hits(plain) == hits(again) == 2
    assert "x-api-version" not in up.received[-1]["header_names"]


def test_negotiation_headers_are_part_of_the_key(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])

    french = gw.get(f"/services/{name}/page", headers={"Accept-Language": "fr"})
    english = gw.get(f"/services/{name}/page", headers={"Accept-Language": "en"})

    assert (french.headers["X-Cache-Status"], english.headers["X-Cache-Status"]) == (
        "MISS",
        "MISS",
    )
    assert hits(english) == 2


@pytest.mark.parametrize("vary", ["*", "User-Agent", "Accept-Language, Cookie"])
def test_an_answer_varying_on_other_headers_is_not_stored(gw, gateway, upstreams, vary):
    up = upstreams()
    name = gateway([up.url])
    up.server.extra_headers = {"Vary": vary}

    gw.get(f"/services/{name}/page")
    second = gw.get(f"/services/{name}/page")

    assert second.headers["X-Cache-Status"] == "BYPASS"  # looked up, not stored
    assert hits(second) == 2


def test_an_answer_varying_on_accept_language_is_stored(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])
    up.server.extra_headers = {"Vary": "Accept-Language"}

    gw.get(f"/services/{name}/page", headers={"Accept-Language": "fr"})
    second = gw.get(f"/services/{name}/page", headers={"Accept-Language": "fr"})

    assert second.headers["X-Cache-Status"] == "HIT"


def test_a_caller_asking_for_no_cache_bypasses_it(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])
    gw.get(f"/services/{name}/page")

    fresh = gw.get(f"/services/{name}/page", headers={"Cache-Control": "no-cache"})

    assert fresh.headers["X-Cache-Status"] == "BYPASS"
    assert hits(fresh) == 2
