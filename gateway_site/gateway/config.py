"""Load and validate the declarative services file.

``configured(path, environ)`` returns the services the operator configured: the
file ``GATEWAY_SERVICES_FILE`` names, or, without one, those of the example
file (gateway_site/services.example.toml) whose ``<NAME>_URL`` is set; none on
a fresh install. ``load(path, environ)`` parses one file. Both return the
configuration and a list of problems, each naming the service and field;
gateway_site.gateway.checks turns them into system check errors, so a bad file
stops ``manage.py check`` and gunicorn instead of failing at request time.
"""

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

SERVICE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
SERVICE_FIELDS = frozenset(
    {
        "url",
        "timeout",
        "max_retries",
        "retry_delay",
        "health_endpoint",
        "circuit_breaker",
        "eject_time",
        "max_concurrent",
        "max_connections",
        "client_hmac",
    }
)
BREAKER_FIELDS = frozenset({"failure_threshold", "recovery_timeout"})


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    urls: tuple[str, ...]
    timeout: float
    max_retries: int
    retry_delay: float
    health_endpoint: str
    failure_threshold: int
    recovery_timeout: float
    # Seconds a replica that failed stays out of rotation unless a probe of its
    # health endpoint re-admits it first.
    eject_time: float
    # Calls to this service in flight at once per instance (None: only the
    # gateway-wide GATEWAY_MAX_CONCURRENT); over it, a fast 503 service_busy.
    max_concurrent: int | None = None
    # Open connections to each replica (None: as many as calls in flight).
    max_connections: int | None = None
    # <SERVICE>_HMAC_SECRET: sign every forwarded request (gateway/signing.py).
    hmac_secret: bytes | None = field(default=None, repr=False)
    # Callers may sign with a client HMAC key instead of a token (opt-in).
    client_hmac: bool = False


@dataclass(frozen=True, slots=True)
class CacheStrategy:
    name: str
    ttl: int
    paths: tuple[str, ...]
    # Answers for one signed-in user (e.g. /users/me, the design's
    # user_sessions): cached per user, never shared, never for anonymous calls.
    per_user: bool = False


@dataclass(frozen=True, slots=True)
class Config:
    services: dict[str, Service] = field(default_factory=dict)
    strategies: tuple[CacheStrategy, ...] = ()
    default_ttl: int = 3600
    health_ttl: int = 60
    cache_max_body_size: int = 1_048_576
    health_interval: float = 30.0
    health_timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the file: where (service, field) and what."""

    kind: str  # "file", "value" or "unknown"
    where: str
    message: str


def env_var(service: str) -> str:
    return f"{service.upper()}_URL"


def secret_var(service: str) -> str:
    return f"{service.upper()}_HMAC_SECRET"


# An HMAC-SHA256 key shorter than the hash adds no strength and is guessable.
HMAC_SECRET_MIN_LENGTH = 32


def _number(value, *, integer=False, minimum=0.0, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if integer and not isinstance(value, int):
        return None
    if not math.isfinite(value) or value < minimum or (value == 0 and not allow_zero):
        return None
    return value


def _urls(raw) -> list[str] | None:
    if isinstance(raw, str):
        items = [item.strip() for item in raw.split(",") if item.strip()]
    elif isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        items = [item.strip() for item in raw if item.strip()]
    else:
        return None
    for item in items:
        parts = urlsplit(item)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        if parts.query or parts.fragment or parts.username or parts.password:
            return None
    return [item.rstrip("/") for item in items] or None


def _service(name, raw, environ, problems) -> Service | None:
    where = f"services.{name}"
    if not SERVICE_NAME.fullmatch(name):
        problems.append(
            Problem("value", where, "a service name is lowercase letters, digits, _")
        )
        return None
    if not isinstance(raw, dict):
        problems.append(Problem("value", where, "must be a table"))
        return None
    for key in sorted(set(raw) - SERVICE_FIELDS):
        problems.append(Problem("unknown", f"{where}.{key}", "unknown setting"))
    breaker = raw.get("circuit_breaker", {})
    if not isinstance(breaker, dict):
        problems.append(Problem("value", f"{where}.circuit_breaker", "must be a table"))
        breaker = {}
    for key in sorted(set(breaker) - BREAKER_FIELDS):
        problems.append(
            Problem("unknown", f"{where}.circuit_breaker.{key}", "unknown setting")
        )
    before = len(problems)

    override = environ.get(env_var(name), "").strip()
    urls = _urls(override) if override else _urls(raw.get("url"))
    if urls is None:
        source = env_var(name) if override else f"{where}.url"
        problems.append(
            Problem(
                "value",
                source,
                "must be one or more http(s)://host[:port][/path] URLs "
                "(comma-separated), without query, fragment or credentials",
            )
        )

    def value(key, *, integer=False, allow_zero=False, default=None, table=None):
        source = raw if table is None else table
        path = f"{where}.{key}" if table is None else f"{where}.circuit_breaker.{key}"
        got = source.get(key, default)
        if got is None:
            problems.append(Problem("value", path, "is required"))
            return None
        checked = _number(got, integer=integer, allow_zero=allow_zero)
        if checked is None:
            kind = "an integer" if integer else "a number"
            bound = ">= 0" if allow_zero else "> 0"
            problems.append(Problem("value", path, f"must be {kind} {bound}"))
        return checked

    timeout = value("timeout")
    max_retries = value("max_retries", integer=True, allow_zero=True)
    retry_delay = value("retry_delay", allow_zero=True)
    threshold = value("failure_threshold", integer=True, table=breaker)
    recovery = value("recovery_timeout", table=breaker)
    eject_time = value("eject_time", default=30)
    limits = {
        key: value(key, integer=True) if key in raw else None
        for key in ("max_concurrent", "max_connections")
    }
    health = raw.get("health_endpoint", "/health")
    if not isinstance(health, str) or not health.startswith("/") or "//" in health:
        problems.append(
            Problem(
                "value", f"{where}.health_endpoint", "must be a path such as /health"
            )
        )
    client_hmac = raw.get("client_hmac", False)
    if not isinstance(client_hmac, bool):
        problems.append(
            Problem("value", f"{where}.client_hmac", "must be true or false")
        )
    secret = environ.get(secret_var(name), "")
    if secret and len(secret.encode()) < HMAC_SECRET_MIN_LENGTH:
        problems.append(
            Problem(
                "value",
                secret_var(name),
                f"must be at least {HMAC_SECRET_MIN_LENGTH} bytes of random text",
            )
        )
    if len(problems) > before:
        return None
    return Service(
        name=name,
        urls=tuple(urls),
        timeout=float(timeout),
        max_retries=max_retries,
        retry_delay=float(retry_delay),
        health_endpoint=health,
        failure_threshold=threshold,
        recovery_timeout=float(recovery),
        eject_time=float(eject_time),
        hmac_secret=secret.encode() or None,
        client_hmac=client_hmac,
        **limits,
    )


def _positive(table, key, default, where, problems, *, integer=False):
    got = table.get(key, default)
    checked = _number(got, integer=integer)
    if checked is None:
        problems.append(Problem("value", f"{where}.{key}", "must be a number > 0"))
        return default
    return checked


def parse(data: dict, environ) -> tuple[Config, list[Problem]]:
    problems: list[Problem] = []
    services = {}
    raw_services = data.get("services", {})
    if not isinstance(raw_services, dict):
        problems.append(Problem("value", "services", "must be a table"))
        raw_services = {}
    for name, raw in raw_services.items():
        service = _service(name, raw, environ, problems)
        if service is not None:
            services[name] = service

    cache = data.get("cache", {})
    health = data.get("health", {})
    if not isinstance(cache, dict):
        problems.append(Problem("value", "cache", "must be a table"))
        cache = {}
    if not isinstance(health, dict):
        problems.append(Problem("value", "health", "must be a table"))
        health = {}
    strategies = []
    health_ttl = 60
    raw_strategies = cache.get("strategies", {})
    if not isinstance(raw_strategies, dict):
        problems.append(Problem("value", "cache.strategies", "must be a table"))
        raw_strategies = {}
    for name, raw in raw_strategies.items():
        where = f"cache.strategies.{name}"
        if not isinstance(raw, dict):
            problems.append(Problem("value", where, "must be a table"))
            continue
        ttl = _positive(raw, "ttl", None, where, problems, integer=True)
        paths = raw.get("paths", [])
        if not isinstance(paths, list) or not all(
            isinstance(p, str) and p.startswith("/") for p in paths
        ):
            problems.append(
                Problem("value", f"{where}.paths", "must be a list of /path patterns")
            )
            paths = []
        per_user = raw.get("per_user", False)
        if not isinstance(per_user, bool):
            problems.append(
                Problem("value", f"{where}.per_user", "must be true or false")
            )
            per_user = False
        if ttl is None:
            continue
        if name == "service_health":
            health_ttl = ttl
        else:
            strategies.append(CacheStrategy(name, ttl, tuple(paths), per_user))
    config = Config(
        services=services,
        strategies=tuple(strategies),
        default_ttl=_positive(
            cache, "default_ttl", 3600, "cache", problems, integer=True
        ),
        health_ttl=health_ttl,
        cache_max_body_size=_positive(
            cache, "max_body_size", 1_048_576, "cache", problems, integer=True
        ),
        health_interval=float(_positive(health, "interval", 30.0, "health", problems)),
        health_timeout=float(_positive(health, "timeout", 10.0, "health", problems)),
    )
    return config, problems


def load(path: Path, environ) -> tuple[Config, list[Problem]]:
    """Read and validate the services file; never raises on bad content."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        return Config(), [Problem("file", str(path), f"cannot be read: {exc.strerror}")]
    except tomllib.TOMLDecodeError as exc:
        return Config(), [Problem("file", str(path), f"is not valid TOML: {exc}")]
    return parse(data, environ)


def configured(path: Path | None, environ) -> tuple[Config, list[Problem]]:
    """The services the operator configured (see the module's docstring)."""
    if path is not None:
        return load(path, environ)
    from gateway_site.gateway.conf import EXAMPLE_SERVICES_FILE

    with open(EXAMPLE_SERVICES_FILE, "rb") as handle:
        data = tomllib.load(handle)
    data["services"] = {
        name: table
        for name, table in data.get("services", {}).items()
        if environ.get(env_var(name), "").strip()
    }
    return parse(data, environ)
