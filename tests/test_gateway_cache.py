import gzip
import json
import time
from http import HTTPStatus

import pytest


def content(response) -> bytes:
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content


def hits(response) -> int:
    return json.loads(content(response))["hits"]


def test_second_get_is_a_hit_served_without_the_upstream(client, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])
    first = client.get(f"/services/{name}/catalog")
    second = client.get(f"/services/{name}/catalog")
    assert first["X-Cache-Status"] == "MISS"
    assert second["X-Cache-Status"] == "HIT"
    assert content(first) == content(second)
    assert second["Content-Type"] == "application/json"
    assert len(up.received) == 1


def test_entries_expire_after_their_ttl(client, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url], default_ttl=1)
    assert hits(client.get(f"/services/{name}/catalog")) == 1
    assert client.get(f"/services/{name}/catalog")["X-Cache-Status"] == "HIT"
    time.sleep(1.2)
    response = client.get(f"/services/{name}/catalog")
    assert response["X-Cache-Status"] == "MISS"
    assert hits(response) == 2


def test_processing_results_use_their_strategy_ttl(client, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url], default_ttl=1, results_ttl=60)
    client.get(f"/services/{name}/results/42")
    time.sleep(1.2)
    assert client.get(f"/services/{name}/results/42")["X-Cache-Status"] == "HIT"


@pytest.mark.parametrize("header", ["Authorization", "Cookie"])
def test_user_specific_requests_bypass_the_cache(client, gateway, upstreams, header):
    up = upstreams()
    name = gateway([up.url])
    client.get(f"/services/{name}/me")  # an anonymous answer is cached
    response = client.get(f"/services/{name}/me", headers={header: "user-a"})
    assert response["X-Cache-Status"] == "BYPASS"
    assert hits(response) == 2  # not the anonymous copy
    again = client.get(f"/services/{name}/me", headers={header: "user-b"})
    assert hits(again) == 3  # nor user a's


@pytest.mark.parametrize("control", ["no-store", "private", "no-cache"])
def test_upstream_cache_control_is_respected(client, gateway, upstreams, control):
    up = upstreams()
    name = gateway([up.url])
    first = client.get(f"/services/{name}/live?cc={control}")
    second = client.get(f"/services/{name}/live?cc={control}")
    assert first["X-Cache-Status"] == second["X-Cache-Status"] == "BYPASS"
    assert len(up.received) == 2


def test_max_age_shortens_the_ttl(client, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])
    client.get(f"/services/{name}/short?cc=max-age=1")
    assert client.get(f"/services/{name}/short?cc=max-age=1")["X-Cache-Status"] == "HIT"
    time.sleep(1.2)
    assert (
        client.get(f"/services/{name}/short?cc=max-age=1")["X-Cache-Status"] == "MISS"
    )


def test_non_200_and_non_get_bypass(client, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])
    for _ in range(2):
        assert client.get(f"/services/{name}/status/404")["X-Cache-Status"] == "BYPASS"
        assert client.post(f"/services/{name}/x")["X-Cache-Status"] == "BYPASS"
    assert len(up.received) == 4


def test_query_string_is_part_of_the_key(client, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])
    client.get(f"/services/{name}/search?q=a")
    response = client.get(f"/services/{name}/search?q=b")
    assert response["X-Cache-Status"] == "MISS"
    assert response.status_code == HTTPStatus.OK


def test_encoded_bodies_are_stored_and_served_as_encoded(client, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])
    headers = {"Accept-Encoding": "gzip"}
    first = client.get(f"/services/{name}/gzip", headers=headers)
    second = client.get(f"/services/{name}/gzip", headers=headers)
    assert (first["X-Cache-Status"], second["X-Cache-Status"]) == ("MISS", "HIT")
    for response in (first, second):
        assert response["Content-Encoding"] == "gzip"
        assert int(response["Content-Length"]) == len(content(response))
        assert gzip.decompress(content(response)) == b'{"packed": true}'
