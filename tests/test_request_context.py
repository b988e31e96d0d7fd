"""Request ids, processing time and the log context (gateway_site.middleware)."""

import io
import json
import logging
import re
import uuid
from http import HTTPStatus

import pytest

from gateway_site.logs import JsonFormatter, RedactFilter, RequestContextFilter

pytestmark = pytest.mark.django_db


@pytest.fixture
def json_log():
    """Capture what the project's handlers would write, as parsed JSON lines."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestContextFilter())
    handler.addFilter(RedactFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)


def test_a_well_formed_request_id_is_returned_unchanged(client):
    response = client.get("/likes/p", headers={"X-Request-ID": "abc-123_x.y"})

    assert response.status_code == HTTPStatus.OK
    assert response["X-Request-ID"] == "abc-123_x.y"


def test_a_uuid_request_id_is_kept(client):
    request_id = str(uuid.uuid4())

    response = client.get("/likes/p", headers={"X-Request-ID": request_id})

    assert response["X-Request-ID"] == request_id


def test_a_request_id_is_generated_when_missing(client):
    first = client.get("/likes/p")["X-Request-ID"]
    second = client.get("/likes/p")["X-Request-ID"]

    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert uuid.UUID(hex=first).version == 4
    assert first != second


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "has space",
        "x" * 65,
        "semi;colon",
        'quote"d',
        "<script>",
        "ünïcode",
        "new\\nline",
    ],
)
def test_a_malformed_request_id_is_replaced(client, bad):
    response = client.get("/likes/p", HTTP_X_REQUEST_ID=bad)

    assert response.status_code == HTTPStatus.OK
    assert response["X-Request-ID"] != bad
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])


def test_the_view_sees_the_request_id(rf):
    from gateway_site.middleware import ObservabilityMiddleware

    seen = {}

    def view(request):
        seen["id"] = request.request_id
        from django.http import HttpResponse

        return HttpResponse("ok")

    response = ObservabilityMiddleware(view)(
        rf.get("/x", headers={"X-Request-ID": "from-client"})
    )

    assert seen["id"] == "from-client"
    assert response["X-Request-ID"] == "from-client"


@pytest.mark.parametrize(
    "path",
    ["/likes/p", "/likes/bad%20id", "/no-such-page", "/health", "/metrics"],
)
def test_every_response_has_a_processing_time_in_milliseconds(client, path):
    response = client.get(path)

    assert re.fullmatch(r"\d+\.\d{2}ms", response["X-Processing-Time"])
    assert "X-Request-ID" in response


def test_responses_made_by_other_middleware_carry_the_headers(client, settings):
    settings.ALLOWED_HOSTS = ["example.com"]

    response = client.get("/likes/p", HTTP_HOST="evil.example")

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response["X-Request-ID"]
    assert response["X-Processing-Time"].endswith("ms")


def test_log_lines_are_json_with_the_request_id_and_client_network(client, json_log):
    client.get(
        "/no-such-page",
        headers={"X-Request-ID": "trace-me-1"},
        REMOTE_ADDR="203.0.113.77",
    )

    records = [r for r in json_log() if r["logger"] == "django.request"]
    assert records, json_log()
    record = records[0]
    assert record["level"] == "WARNING"
    assert record["message"] == "Not Found: /no-such-page"
    assert record["request_id"] == "trace-me-1"
    assert record["client_ip"] == "203.0.113.0/24"
    assert "timestamp" in record


def test_no_raw_client_ip_is_logged(client, json_log, settings):
    settings.LIKES_CLIENT_IP_HEADER = "CF-Connecting-IP"

    client.get(
        "/likes/bad%20id",
        headers={"CF-Connecting-IP": "2001:db8:abcd:12:1:2:3:4"},
        REMOTE_ADDR="198.51.100.23",
    )

    lines = json_log()
    assert lines
    text = json.dumps(lines)
    assert "2001:db8:abcd:12:1:2:3:4" not in text
    assert "198.51.100.23" not in text
    assert {r["client_ip"] for r in lines} == {"2001:db8:abcd::/48"}


def test_records_outside_a_request_have_no_request_id(client, json_log):
    client.get("/likes/p", headers={"X-Request-ID": "finished-one"})

    logging.getLogger("gateway_site.test").warning("between requests")

    (record,) = [r for r in json_log() if r["logger"] == "gateway_site.test"]
    assert record["request_id"] is None
    assert record["client_ip"] is None


@pytest.mark.parametrize(
    ("message", "args", "secret"),
    [
        ("calling %s", ("https://svc/x?api_key=s3cr3tvalue&page=2",), "s3cr3tvalue"),
        ("headers %s", ({"Authorization": "Bearer abc.def.ghi"},), "abc.def.ghi"),
        ("upstream said %s", ('{"access_token": "tok-123456"}',), "tok-123456"),
        ("login %s", ("password=hunter2hunter2",), "hunter2hunter2"),
        ("got %s", ("Cookie: sessionid=sess-987",), "sess-987"),
        ("key %s", ("X-API-Key: abcd1234.efghijklmnop",), "abcd1234.efghijklmnop"),
        ("jwt %s", ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",), "c2lnbmF0"),
    ],
)
def test_credentials_are_redacted_from_messages(json_log, message, args, secret):
    logging.getLogger("gateway_site.gateway").warning(message, *args)

    (record,) = json_log()
    assert secret not in json.dumps(record)
    assert "[REDACTED]" in record["message"]


def test_credentials_are_redacted_from_extras_and_tracebacks(json_log):
    try:
        raise ValueError("bad token=t0ps3cr3t")
    except ValueError:
        logging.getLogger("likes.test").exception(
            "failed",
            extra={
                "api_key": "k-1234567890",
                "headers": {"X-API-Key": "k-abcdef", "Accept": "application/json"},
            },
        )

    (record,) = json_log()
    text = json.dumps(record)
    assert "t0ps3cr3t" not in text
    assert "k-1234567890" not in text
    assert "k-abcdef" not in text
    assert record["headers"]["Accept"] == "application/json"
    assert "ValueError" in record["exc_info"]


def test_ordinary_words_are_not_redacted(json_log):
    logging.getLogger("likes.test").info("max_tokens=5 for post token-bucket %s", 3)

    (record,) = json_log()
    assert record["message"] == "max_tokens=5 for post token-bucket 3"


def test_the_access_log_is_off_by_default(client, json_log):
    client.get("/likes/p")

    assert not [r for r in json_log() if r["logger"] == "gateway_site.access"]


def test_the_access_log_writes_one_json_line_per_request(client, json_log, settings):
    settings.LOG_REQUESTS = True

    client.get(
        "/likes/p?token=abc",
        headers={"X-Request-ID": "access-1"},
        REMOTE_ADDR="192.0.2.10",
    )

    (record,) = [r for r in json_log() if r["logger"] == "gateway_site.access"]
    assert record["request_id"] == "access-1"
    assert record["status_code"] == HTTPStatus.OK
    assert record["route"] == "likes/<anytext:post_id>"
    assert record["path"] == "/likes/p"
    assert record["client_ip"] == "192.0.2.0/24"
    assert isinstance(record["duration_ms"], float)
    assert "abc" not in json.dumps(record)


def test_a_record_logged_while_resolving_the_client_ip_does_not_loop(
    client, json_log, settings
):
    settings.LIKES_CLIENT_IP_HEADER = "CF-Connecting-IP"

    response = client.get("/no-such-page", headers={"X-Request-ID": "no-header"})

    assert response.status_code == HTTPStatus.NOT_FOUND
    records = json_log()
    by_logger = {r["logger"]: r for r in records}
    assert by_logger["likes.ratelimit"]["request_id"] == "no-header"
    assert by_logger["django.request"]["client_ip"] == "127.0.0.0/24"


def test_new_request_ids_are_uuid4_and_differ_in_forked_workers():
    import os

    from gateway_site.http import request_id

    ids = {request_id(None) for _ in range(1000)}
    assert len(ids) == 1000
    assert all(uuid.UUID(i).version == 4 and len(i) == 32 for i in ids)

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a worker forked from the master: its own sequence
        os.write(write, request_id(None).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    assert child != request_id(None)
    assert uuid.UUID(child).version == 4
