import time
from collections import Counter
from http import HTTPStatus

from gateway_site.gateway import console, registry


def served_by(response) -> str:
    return response.json()["served_by"]


def test_two_replicas_share_the_load(gw, gateway, upstreams):
    a, b = upstreams("a"), upstreams("b")
    name = gateway([a.url, b.url])
    counts = Counter(
        served_by(gw.get(f"/services/{name}/work?cc=no-store")) for _ in range(20)
    )
    assert counts == {"a": 10, "b": 10}


def test_killing_a_replica_moves_all_traffic_without_errors(gw, gateway, upstreams):
    a, b = upstreams("a"), upstreams("b")
    name = gateway([a.url, b.url])
    for _ in range(4):
        assert gw.get(f"/services/{name}/warm?cc=no-store").status_code == 200
    a.kill()
    statuses, servers = Counter(), Counter()
    for method in ("get", "put", "delete", "head", "options") * 4:
        response = getattr(gw, method)(f"/services/{name}/work?cc=no-store")
        statuses[response.status_code] += 1
        if method == "get":
            servers[served_by(response)] += 1
    assert statuses == {HTTPStatus.OK: 20}
    assert servers == {"b": 4}
    assert registry.get().upstreams[name].balancer.ejected() == [a.url]


def test_a_post_refused_at_connect_goes_to_the_other_replica(gw, gateway, upstreams):
    a, b = upstreams("a"), upstreams("b")
    name = gateway([a.url, b.url])
    a.kill()
    for _ in range(4):
        response = gw.post(
            f"/services/{name}/create",
            content=b"{}",
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == HTTPStatus.OK
    assert len(b.received) == 4


def test_a_health_probe_readmits_an_ejected_replica(gw, gateway, upstreams):
    a, b = upstreams("a"), upstreams("b")
    name = gateway([a.url, b.url], eject_time=300, health_interval=0.2, max_retries=1)
    balancer = registry.get().upstreams[name].balancer
    a.fail(1, status=502)
    b.fail(1, status=502)
    a.server.healthy = False
    gw.get(f"/services/{name}/work?cc=no-store")
    assert sorted(balancer.ejected()) == sorted([a.url, b.url])
    deadline = time.monotonic() + 5
    while b.url in balancer.ejected() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert balancer.ejected() == [a.url]  # b's probe passed, a's did not
    # The console shows a still out, b back in the rotation.
    store = registry.get().store
    keys = [console.ejected_key(name, 0), console.ejected_key(name, 1)]
    deadline = time.monotonic() + 2
    while store.get_numbers(keys)[0] is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(console.FLUSH_EVERY * 2)
    ejected_a, ejected_b = store.get_numbers(keys)
    assert ejected_a is not None and ejected_b is None
    a.server.healthy = True
    deadline = time.monotonic() + 5
    while balancer.ejected() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert balancer.ejected() == []


def test_all_replicas_down_is_502(gw, gateway, upstreams):
    a, b = upstreams("a"), upstreams("b")
    name = gateway([a.url, b.url], max_retries=1)
    a.kill()
    b.kill()
    response = gw.get(f"/services/{name}/work")
    assert response.status_code == HTTPStatus.BAD_GATEWAY
    assert response.json()["code"] == "upstream_unavailable"
