"""The fast path for count reads answers exactly as Django's full stack does.

Each request is sent twice through the real WSGI applications: once through
Django's handler (the project's full middleware stack) and once through
``FastReads``; status, body and every header must match, except the values
that differ per request by design (request id, processing time). A recorder
around Django tells which requests the fast path answered itself.
"""

import io
import sys
from http import HTTPStatus

import pytest
from django.core.cache import caches
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.test import override_settings
from prometheus_client import REGISTRY

from gateway_site import fastpath
from gateway_site.fastpath import FastReads
from gateway_site.wsgi import application
from likes.models import Post

pytestmark = pytest.mark.django_db

ALLOWED_ORIGIN = "http://localhost:1313"
PER_REQUEST = {"x-request-id", "x-processing-time"}


class Recorder:
    """Django's WSGI app, counting the requests that reach it.

    A new handler, so that its middleware read the settings of the test.
    """

    def __init__(self):
        self.calls = 0
        self.django = WSGIHandler()

    def __call__(self, environ, start_response):
        self.calls += 1
        return self.django(environ, start_response)


def environ(path="/likes/hello", method="GET", remote="127.0.0.1", **extra):
    env = {
        "REQUEST_METHOD": method,
        # WSGI carries the path as latin-1 decoded bytes.
        "PATH_INFO": path.encode().decode("latin-1"),
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "REMOTE_ADDR": remote,
        "wsgi.input": io.BytesIO(b""),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
    }
    env.update(extra)
    return env


def call(app, env):
    seen = {}

    def start_response(status, headers):
        seen["status"], seen["headers"] = status, headers

    result = app(env, start_response)
    body = b"".join(result)
    if hasattr(result, "close"):
        result.close()
    headers = {}
    for name, value in seen["headers"]:
        assert name.lower() not in headers, f"{name} sent twice"
        headers[name.lower()] = value
    return seen["status"], headers, body


def comparable(headers):
    return {k: v for k, v in headers.items() if k not in PER_REQUEST}


def both(**kwargs):
    """(Django's answer, the fast path's answer, whether Django made the latter).

    Each comes from its own client address, so both see the same rate limit.
    """
    recorder = Recorder()
    fast = FastReads(recorder)
    assert fast.disabled_because is None
    by_django = call(WSGIHandler(), environ(remote="192.0.2.1", **kwargs))
    by_fast = call(fast, environ(remote="192.0.2.2", **kwargs))
    return by_django, by_fast, recorder.calls


def assert_same(by_django, by_fast):
    assert by_fast[0] == by_django[0]
    assert by_fast[2] == by_django[2]
    assert comparable(by_fast[1]) == comparable(by_django[1])
    assert set(by_fast[1]) == set(by_django[1])
    assert by_fast[1]["x-processing-time"].endswith("ms")


@pytest.fixture(autouse=True)
def keep_the_test_connection():
    """As Django's test client does: a request must not close the connection
    that holds the test's transaction (PostgreSQL would close it at the end
    of every request, seeing autocommit off)."""
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture(autouse=True)
def fresh_cache():
    caches["counters"].clear()
    yield
    caches["counters"].clear()


def test_the_deployed_application_takes_the_fast_path():
    assert isinstance(application, FastReads)
    assert application.disabled_because is None


def test_the_base_settings_are_the_stack_it_mirrors():
    from gateway_site.settings import base

    assert tuple(base.MIDDLEWARE) == fastpath.MIRRORED_MIDDLEWARE


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"method": "HEAD"},
        {"path": "/likes/caf\u00e9-na\u00efve-\u65e5\u672c"},
        {"HTTP_ORIGIN": ALLOWED_ORIGIN},
        {"HTTP_ORIGIN": "https://elsewhere.example"},
        {"HTTP_ORIGIN": "http://[::1"},  # not parseable
        {"HTTP_ORIGIN": "null"},
        {"HTTP_USER_AGENT": "Mozilla/5.0", "HTTP_ACCEPT": "application/json"},
        {"QUERY_STRING": "ids=a,b"},
        {"wsgi.url_scheme": "https", "SERVER_PORT": "443"},
    ],
    ids=repr,
)
def test_a_read_is_answered_as_django_answers_it(kwargs):
    Post.objects.create(post_id="hello", likes=7)

    by_django, by_fast, django_calls = both(**kwargs)

    assert django_calls == 0, "the fast path handed it to Django"
    assert by_django[0] == "200 OK"
    assert_same(by_django, by_fast)


def test_a_decomposed_id_goes_to_django_which_answers_under_its_nfc_form():
    Post.objects.create(post_id="\u00e9t\u00e9", likes=3)

    by_django, by_fast, django_calls = both(path="/likes/e\u0301t\u00e9")

    assert django_calls == 1
    assert_same(by_django, by_fast)
    assert by_fast[2] == '{"post_id":"\u00e9t\u00e9","likes":3}'.encode()


def test_the_count_is_the_posts_count():
    Post.objects.create(post_id="counted", likes=41)

    _, (status, headers, body), _ = both(path="/likes/counted")

    assert status == "200 OK"
    assert body == b'{"post_id":"counted","likes":41}'
    assert headers["content-length"] == str(len(body))


def test_an_allowed_origin_gets_the_cors_headers():
    _, (_, headers, _), _ = both(HTTP_ORIGIN=ALLOWED_ORIGIN)

    assert headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "RateLimit" in headers["access-control-expose-headers"]
    assert headers["vary"] == "origin"


@override_settings(SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"))
def test_https_behind_a_proxy_gets_hsts_as_from_django():
    by_django, by_fast, calls = both(HTTP_X_FORWARDED_PROTO="https")

    assert calls == 0
    assert "strict-transport-security" in by_fast[1]
    assert_same(by_django, by_fast)


def test_a_well_formed_request_id_is_kept_and_a_bad_one_replaced():
    _, (_, kept, _), _ = both(HTTP_X_REQUEST_ID="abc-123.DEF_4")
    _, (_, replaced, _), _ = both(HTTP_X_REQUEST_ID="no spaces allowed")

    assert kept["x-request-id"] == "abc-123.DEF_4"
    assert len(replaced["x-request-id"]) == 32
    assert replaced["x-request-id"] != "no spaces allowed"


@override_settings(RATELIMIT_ENABLE=True, LIKES_GET_RATE="2/m")
def test_rate_limits_count_once_and_answer_429_as_django(caplog):
    """One client, three reads by Django, then (counts reset) by the fast path."""
    recorder = Recorder()
    fast = FastReads(recorder)
    answers = {}
    logged = {}
    for name, app in (("django", WSGIHandler()), ("fast", fast)):
        caches["counters"].clear()
        caplog.clear()
        answers[name] = [call(app, environ()) for _ in range(3)]
        logged[name] = [
            (r.name, r.levelname, r.getMessage(), r.status_code)
            for r in caplog.records
            if r.name == "django.request"
        ]

    assert recorder.calls == 0
    for by_django, by_fast in zip(answers["django"], answers["fast"], strict=True):
        assert_same(by_django, by_fast)
    statuses = [status for status, _, _ in answers["fast"]]
    remaining = [h["x-ratelimit-remaining"] for _, h, _ in answers["fast"]]
    assert statuses == ["200 OK", "200 OK", "429 Too Many Requests"]
    assert remaining == ["1", "0", "0"]
    assert answers["fast"][2][1]["retry-after"]
    assert logged["fast"] == logged["django"]
    assert logged["fast"] == [
        ("django.request", "WARNING", "Too Many Requests: /likes/hello", 429)
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"method": "POST"},
        {"method": "DELETE"},
        {"method": "OPTIONS", "HTTP_ORIGIN": ALLOWED_ORIGIN},
        {"path": "/likes/"},
        {"path": "/likes/has space"},
        {"path": "/likes/" + "x" * 201},
        {"path": "/likesx/hello"},
        {"path": "/health"},
        {"HTTP_HOST": "evil.example"},
        {"PATH_INFO": "/likes/\xff\xfe"},  # not UTF-8
        {"HTTP_ORIGIN": "http://local\r\nhost:1313"},  # Django refuses to echo it
    ],
    ids=repr,
)
def test_what_it_does_not_answer_goes_to_django(kwargs):
    recorder = Recorder()
    fast = FastReads(recorder)

    call(fast, environ(**kwargs))

    assert recorder.calls == 1


@override_settings(SECURE_SSL_REDIRECT=True)
def test_plain_http_goes_to_django_when_https_is_enforced():
    recorder = Recorder()
    fast = FastReads(recorder)

    status, headers, _ = call(fast, environ())
    https_status, _, _ = call(fast, environ(**{"wsgi.url_scheme": "https"}))

    assert status.startswith("301")
    assert headers["location"].startswith("https://")
    assert recorder.calls == 1
    assert https_status == "200 OK"


@override_settings(RATELIMIT_ENABLE=True, LIKES_GET_RATE="5/m")
def test_a_database_error_goes_to_django_and_counts_once(monkeypatch):
    recorder = Recorder()
    fast = FastReads(recorder)

    def broken(post_id):
        raise RuntimeError("database unavailable")

    monkeypatch.setattr(fast, "count", broken)
    status, headers, _ = call(fast, environ())

    assert recorder.calls == 1
    assert status == "200 OK"  # Django's own read worked
    assert headers["x-ratelimit-remaining"] == "4"


@pytest.mark.parametrize(
    "overrides, reason",
    [
        ({"LIKES_FAST_READS": False}, "LIKES_FAST_READS is off"),
        ({"DEBUG": True}, "DEBUG is on"),
        ({"LOG_REQUESTS": True}, "LOG_REQUESTS is on"),
        ({"MIDDLEWARE": list(fastpath.MIRRORED_MIDDLEWARE[1:])}, "the middleware"),
        ({"CORS_ALLOW_ALL_ORIGINS": True}, "CORS allows every origin"),
        ({"CORS_ALLOWED_ORIGIN_REGEXES": [r"^https://.*\.example$"]}, "regexes"),
        ({"WHITENOISE_ROOT": "/tmp"}, "static files"),
        ({"STATIC_URL": "/likes/static/"}, "static files"),
        ({"DATABASE_ROUTERS": ["tests.routers.Elsewhere"]}, "DATABASE_ROUTERS"),
        ({"DEFAULT_CHARSET": "latin-1"}, "DEFAULT_CHARSET"),
        ({"ROOT_URLCONF": "tests.test_fastpath"}, "like_detail"),
        ({"DISALLOWED_USER_AGENTS": []}, None),
    ],
    ids=repr,
)
def test_configurations_it_does_not_mirror_send_everything_to_django(overrides, reason):
    with override_settings(**overrides):
        recorder = Recorder()
        fast = FastReads(recorder)
        call(fast, environ())

    if reason is None:
        assert fast.disabled_because is None
        assert recorder.calls == 0
    else:
        assert reason in fast.disabled_because
        assert recorder.calls == 1


@pytest.mark.parametrize("connected", ["before", "after"])
def test_request_signals_reach_their_receivers_as_from_django(connected):
    """Receivers found at start are called directly; a later one is not missed."""
    seen = []

    def on_started(sender, environ, **kwargs):
        seen.append(("started", sender, environ["PATH_INFO"]))

    def on_finished(sender, **kwargs):
        seen.append(("finished", sender))

    recorder = Recorder()
    if connected == "after":
        fast = FastReads(recorder)
    request_started.connect(on_started)
    request_finished.connect(on_finished)
    try:
        if connected == "before":
            fast = FastReads(recorder)
        call(fast, environ(path="/likes/signalled"))
    finally:
        request_started.disconnect(on_started)
        request_finished.disconnect(on_finished)

    assert recorder.calls == 0
    assert seen == [
        ("started", WSGIHandler, "/likes/signalled"),
        ("finished", WSGIHandler),
    ]


# A URLconf where /likes/<id> is something else (test_configurations_...).
urlpatterns = []


def test_atomic_requests_send_everything_to_django(settings):
    from django.db import connections

    connection = connections["default"]
    original = connection.settings_dict["ATOMIC_REQUESTS"]
    connection.settings_dict["ATOMIC_REQUESTS"] = True
    try:
        fast = FastReads(Recorder())
    finally:
        connection.settings_dict["ATOMIC_REQUESTS"] = original

    assert fast.disabled_because == "requests are atomic"


def test_a_cors_listener_connected_after_start_is_asked_by_django():
    from corsheaders.signals import check_request_enabled

    def enable(sender, request, **kwargs):
        return True

    recorder = Recorder()
    fast = FastReads(recorder)
    check_request_enabled.connect(enable)
    try:
        call(fast, environ())
    finally:
        check_request_enabled.disconnect(enable)

    assert recorder.calls == 1


def test_a_receiver_swapped_after_start_is_the_one_called():
    seen = []

    def first(sender, **kwargs):
        seen.append("first")

    def second(sender, **kwargs):
        seen.append("second")

    request_started.connect(first)
    try:
        fast = FastReads(Recorder())
    finally:
        request_started.disconnect(first)
    request_started.connect(second)
    try:
        call(fast, environ())
    finally:
        request_started.disconnect(second)

    assert seen == ["second"]


def test_a_failed_read_is_django_s_whole_request_once(monkeypatch):
    events = []

    def on_started(sender, **kwargs):
        events.append("started")

    def on_finished(sender, **kwargs):
        events.append("finished")

    recorder = Recorder()
    fast = FastReads(recorder)

    def broken(post_id):
        raise RuntimeError("database unavailable")

    monkeypatch.setattr(fast, "count", broken)
    request_started.connect(on_started)
    request_finished.connect(on_finished)
    try:
        call(fast, environ())
    finally:
        request_started.disconnect(on_started)
        request_finished.disconnect(on_finished)

    assert recorder.calls == 1
    # The fast path's start, then Django's request: one finish, no double cycle.
    assert events == ["started", "started", "finished"]


@override_settings(RATELIMIT_ENABLE=True, LIKES_GET_RATE="5/m")
def test_an_error_after_counting_is_a_logged_json_500_not_a_retry(monkeypatch, caplog):
    recorder = Recorder()
    fast = FastReads(recorder)

    def broken(*args, **kwargs):
        raise OSError("metrics directory full")

    monkeypatch.setattr(fast.metrics, "observe_route", broken)
    status, headers, body = call(fast, environ(HTTP_ORIGIN=ALLOWED_ORIGIN))
    _, again, _ = call(recorder.django, environ())

    assert recorder.calls == 0
    assert status == "500 Internal Server Error"
    assert body == b'{"detail":"Internal server error.","code":"server_error"}'
    assert headers["content-type"] == "application/json"
    assert headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert headers["x-request-id"]
    assert again["x-ratelimit-remaining"] == "3"  # the failed read counted once
    (record,) = [r for r in caplog.records if r.name == "django.request"]
    assert record.levelname == "ERROR"
    assert record.getMessage() == "Internal Server Error: /likes/hello"
    assert "OSError: metrics directory full" in caplog.text  # the traceback


def sample(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0


def test_reads_are_counted_under_the_same_metric_labels_as_django():
    labels = {"method": "GET", "endpoint": "/likes/<post_id>", "status_code": "200"}
    before = sample("requests_total", **labels)

    by_django, by_fast, calls = both()

    assert calls == 0
    assert sample("requests_total", **labels) == before + 2


def test_the_response_status_is_a_real_http_status():
    _, (status, _, _), _ = both()

    code, reason = status.split(" ", 1)
    assert HTTPStatus(int(code)).phrase == reason
