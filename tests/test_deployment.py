"""Static checks of the deployment files: Dockerfile, compose files, env docs."""

import ast
import os
import re
import runpy
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from tests.conftest import need
from tests.live import (
    BASE_DIR,
    BIN,
    free_port,
    gunicorn,
    manage,
    project_env,
    wait_until_healthy,
)

DOCKERFILE = BASE_DIR / "docker/Dockerfile"
ENTRYPOINT = BASE_DIR / "docker/entrypoint.sh"
COMPOSE = BASE_DIR / "docker-compose.yml"
COMPOSE_DEV = BASE_DIR / "docker-compose.dev.yml"
ENV_EXAMPLE = BASE_DIR / ".env.docker.example"
README = BASE_DIR / "README.md"
TUNNEL_NETWORK = "cloudflare_internal_net"
SERVICE = "likes"
# Read by docker compose itself or by a library, not by the project's code.
READ_OUTSIDE_THE_CODE = {
    "COMPOSE_PROFILES",  # docker compose: which profiles are on
    "POSTGRES_PASSWORD",  # the postgres service (its env_file)
    "TUNNEL_TOKEN",  # the optional cloudflared service
    "OTEL_EXPORTER_OTLP_ENDPOINT",  # the OpenTelemetry SDK
}


def tool(name: str) -> str:
    path = BIN / name
    need(path.exists(), f"{name} is not installed (make .venv/.dev-installed)")
    return str(path)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def compose_dev() -> dict:
    return yaml.safe_load(COMPOSE_DEV.read_text())


# --- Linters ------------------------------------------------------------------


def test_hadolint_passes_on_the_dockerfile():
    result = subprocess.run(
        [tool("hadolint"), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_find_problems():
    """The linter really runs: a Dockerfile with known problems fails."""
    bad = "FROM python:latest\nRUN apt-get install curl\nRUN cd /app\n"
    result = subprocess.run(
        [tool("hadolint"), "--no-color", "-"],
        input=bad,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "DL3007" in result.stdout  # :latest


def test_shellcheck_passes_on_the_entrypoint():
    result = subprocess.run(
        [tool("shellcheck"), str(ENTRYPOINT)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", [COMPOSE, COMPOSE_DEV], ids=lambda p: p.name)
def test_compose_files_match_the_compose_specification(path):
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", path],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_docker_compose_accepts_both_files(tmp_path):
    docker = shutil.which("docker")
    plugin = docker and subprocess.run(
        [docker, "compose", "version"], capture_output=True, timeout=30
    )
    if not plugin or plugin.returncode != 0:
        pytest.skip("the docker compose plugin is not installed")
    env_file = tmp_path / ".env"
    env_file.write_text(ENV_EXAMPLE.read_text())
    result = subprocess.run(
        [docker, "compose", "--env-file", str(env_file), "-f", str(COMPOSE)]
        + ["-f", str(COMPOSE_DEV), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=BASE_DIR,
    )

    assert result.returncode == 0, result.stderr


# --- Dockerfile ---------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in (raw.strip() for raw in joined.splitlines())
        if line and not line.startswith("#")
    ]


def stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions, one list per build stage."""
    result: list[list[tuple[str, str]]] = []
    for op, args in dockerfile_instructions():
        if op == "FROM":
            result.append([])
        result[-1].append((op, args))
    return result


def test_image_is_python_3_11_slim_run_as_a_non_root_user():
    builder, final = stages()
    users = [args for op, args in final if op == "USER"]

    assert builder[0] == ("FROM", "python:3.11-slim-bookworm AS builder")
    assert final[0] == ("FROM", "python:3.11-slim-bookworm")
    assert users == ["10001:10001"]


def test_the_builder_compiles_wheels_and_the_image_installs_only_those():
    builder, final = stages()
    build = [a for op, a in builder if op == "RUN" and "pip wheel" in a]
    install = [a for op, a in final if op == "RUN" and "pip install" in a]

    assert any("gcc" in a for op, a in builder if op == "RUN")
    assert len(build) == 1 and "--wheel-dir /wheels" in build[0]
    assert len(install) == 1
    assert "--mount=type=bind,from=builder,source=/wheels,target=/wheels" in install[0]
    assert install[0].count("--no-index --find-links /wheels") == 2
    assert not [a for op, a in final if "apt-get" in a]  # no compiler, no extras


def test_dependencies_are_installed_in_a_layer_before_the_code():
    steps = stages()[-1]
    copies = [i for i, (op, _) in enumerate(steps) if op == "COPY"]
    install = next(i for i, (op, a) in enumerate(steps) if "pip install" in a)

    assert steps[copies[0]][1] == "requirements/ requirements/"
    assert copies[0] < install < copies[1]
    assert steps[copies[1]][1] == ". ."


def requirement_names(name: str) -> set[str]:
    """Package names a requirements file pins, following its ``-r`` includes."""
    names = set()
    for line in (BASE_DIR / "requirements" / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            names |= requirement_names(line[3:].strip())
        elif line:
            names.add(re.split(r"[\[=<>~ ]", line)[0].lower())
    return names


def test_the_embedded_default_installs_no_postgresql_driver_and_no_tracing():
    """Django REST framework imports psycopg and requests whenever installed."""
    base = requirement_names("base.txt")

    assert not {n for n in base if n.startswith(("psycopg", "opentelemetry"))}
    assert "psycopg" in requirement_names("postgres.txt")
    assert "opentelemetry-exporter-otlp-proto-http" in requirement_names("tracing.txt")
    dev = requirement_names("dev.txt")
    assert requirement_names("postgres.txt") | requirement_names("tracing.txt") <= dev


@pytest.mark.parametrize(("stage", "pip"), [(0, "pip wheel"), (1, "pip install")])
def test_the_image_installs_the_postgresql_and_tracing_extras_by_default(stage, pip):
    steps = stages()[stage]
    extras = next(a for op, a in steps if op == "ARG" and a.startswith("EXTRAS="))
    install = next(a for op, a in steps if pip in a)

    assert shlex.split(extras.removeprefix("EXTRAS=")) == ["postgres tracing"]
    assert "-r requirements/base.txt" in install
    assert "for extra in $EXTRAS; do" in install
    assert '-r "requirements/$extra.txt"' in install
    for extra in ("postgres", "tracing"):
        assert (BASE_DIR / "requirements" / f"{extra}.txt").is_file()


def test_postgresql_without_its_driver_refuses_to_start_with_the_fix(tmp_path):
    env = project_env(
        DATA_DIR=str(tmp_path), DATABASE_URL="postgres://u@127.0.0.1:5432/db"
    )
    # As on an install from requirements/base.txt only.
    code = (
        "import runpy, sys; sys.modules['psycopg'] = None; "
        "sys.argv = ['manage.py', 'check']; "
        "runpy.run_path('manage.py', run_name='__main__')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode != 0
    assert "pip install -r requirements/postgres.txt" in result.stderr


def test_static_files_are_collected_with_a_build_only_secret():
    steps = dockerfile_instructions()
    collect = [a for op, a in steps if op == "RUN" and "collectstatic" in a]
    env = " ".join(a for op, a in steps if op in {"ENV", "ARG"})

    assert len(collect) == 1
    assert "DJANGO_SECRET_KEY=" in collect[0]
    assert "DJANGO_SECRET_KEY" not in env  # nothing carries it to run time
    assert "DATA_DIR=/data" in env
    assert "API_GATEWAY_HOST=0.0.0.0" in env


def test_healthcheck_uses_python_not_curl_and_cmd_is_gunicorn():
    steps = dockerfile_instructions()
    health = [a for op, a in steps if op == "HEALTHCHECK"]
    cmd = [a for op, a in steps if op == "CMD"]
    entrypoint = [a for op, a in steps if op == "ENTRYPOINT"]

    assert len(health) == 1
    assert '"python", "/app/docker/healthcheck.py"' in health[0]
    assert "curl" not in health[0]
    assert cmd == ['["gunicorn", "-c", "gateway_site/gunicorn.conf.py"]']
    assert entrypoint == ['["/app/docker/entrypoint.sh"]']
    assert ("VOLUME", '["/data"]') in steps
    assert ("WORKDIR", "/app") in steps  # where the paths above point


def test_entrypoint_migrates_under_the_lock_then_execs_the_command():
    script = ENTRYPOINT.read_text()

    assert ENTRYPOINT.stat().st_mode & 0o111  # executable
    assert "manage.py migrate_locked --noinput" in script
    assert script.rstrip().endswith('exec "$@"')


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_image():
    ignored = (BASE_DIR / ".dockerignore").read_text().split()

    for entry in (
        *(".env", ".git", ".venv", "data", "staticfiles"),
        *("*.sqlite3", "*.dump", "*.pem", "*.key"),
    ):
        assert entry in ignored


# --- Compose ------------------------------------------------------------------


def test_tunnel_service_publishes_no_port(compose):
    for name, service in compose["services"].items():
        assert "ports" not in service, name
    assert "ports" not in compose["services"][SERVICE]


def test_service_is_on_the_external_tunnel_network(compose):
    assert TUNNEL_NETWORK in compose["services"][SERVICE]["networks"]
    assert compose["networks"][TUNNEL_NETWORK]["external"] is True


def test_service_keeps_its_data_in_a_named_volume(compose):
    service = compose["services"][SERVICE]
    mounts = dict(volume.split(":")[::-1] for volume in service["volumes"])

    assert mounts["/data"] in compose["volumes"]


def test_service_restarts_reads_dot_env_and_has_a_healthcheck(compose):
    service = compose["services"][SERVICE]

    assert service["restart"] == "unless-stopped"
    assert service["env_file"] == ".env.docker"
    assert service["healthcheck"]["test"] == [
        "CMD",
        "python",
        "/app/docker/healthcheck.py",
    ]
    assert service["build"]["dockerfile"] == "docker/Dockerfile"


def test_service_runs_with_least_privilege(compose):
    service = compose["services"][SERVICE]

    assert service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]
    assert service["read_only"] is True
    assert "/tmp" in service["tmpfs"]


@pytest.mark.parametrize("name", ["likes", "postgres", "redis", "prometheus"])
def test_services_have_healthchecks(compose, name):
    assert compose["services"][name]["healthcheck"]["test"]


def test_docker_stop_waits_longer_than_gunicorns_graceful_timeout(compose):
    conf = runpy.run_path(str(BASE_DIR / "gateway_site/gunicorn.conf.py"))
    grace = compose["services"][SERVICE]["stop_grace_period"]

    assert grace.endswith("s")
    assert int(grace[:-1]) > conf["graceful_timeout"]
    assert conf["timeout"] < 100  # Cloudflare ends a request after 100 s


@pytest.mark.parametrize(
    ("name", "image"),
    [
        ("postgres", "postgres:15"),
        ("redis", "redis:7"),
        ("prometheus", "prom/prometheus:"),
        ("jaeger", "jaegertracing/all-in-one:"),
    ],
)
def test_optional_services_sit_behind_their_profile(compose, name, image):
    service = compose["services"][name]

    assert service["profiles"] == [name]
    assert service["image"].startswith(image)
    assert "profiles" not in compose["services"][SERVICE]


@pytest.mark.parametrize("name", ["postgres", "redis", "jaeger"])
def test_service_waits_for_optional_services_only_when_they_run(compose, name):
    dependency = compose["services"][SERVICE]["depends_on"][name]

    assert dependency["required"] is False


def test_prometheus_reads_the_repository_config(compose):
    prometheus = compose["services"]["prometheus"]

    assert "./docker/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert (BASE_DIR / "docker/prometheus/prometheus.yml").is_file()


def test_prometheus_on_the_backend_network_may_scrape_metrics(compose):
    """The example env file's allow-list covers Docker's default pools, where it
    gets its IP (set in the env file, not in the compose file, so that a value in
    .env.docker is not overridden)."""
    import ipaddress

    assert "METRICS_ALLOWED_IPS" not in compose["services"][SERVICE].get(
        "environment", {}
    )
    default = example_values()["METRICS_ALLOWED_IPS"]
    networks = [ipaddress.ip_network(n) for n in default.split(",")]
    prometheus_networks = compose["services"]["prometheus"]["networks"]

    assert "backend" in prometheus_networks
    for docker_pool in ("172.17.0.2", "172.30.5.9", "192.168.16.3"):
        assert any(ipaddress.ip_address(docker_pool) in n for n in networks)
    assert ipaddress.ip_address("127.0.0.1") in networks[0]


def test_jaeger_accepts_otlp(compose):
    assert compose["services"]["jaeger"]["environment"]["COLLECTOR_OTLP_ENABLED"] in {
        "true",
        True,
    }


def test_postgres_has_no_default_password(compose):
    postgres = compose["services"]["postgres"]

    # From .env.docker, where the example leaves it empty.
    assert "POSTGRES_PASSWORD" not in postgres["environment"]
    assert postgres["env_file"] == ".env.docker"


def example_values() -> dict[str, str]:
    """Every VAR=value in .env.docker.example, commented out or not."""
    pattern = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$")
    return {
        m[1]: m[2].strip()
        for m in map(pattern.match, ENV_EXAMPLE.read_text().splitlines())
        if m
    }


@pytest.mark.parametrize(
    ("variable", "service", "port"),
    [
        ("DATABASE_URL", "postgres", 5432),
        ("REDIS_URL", "redis", 6379),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "jaeger", 4318),
    ],
)
def test_env_example_wires_the_profiles_to_the_app(compose, variable, service, port):
    url = urlsplit(example_values()[variable])

    assert url.hostname == service
    assert url.port == port
    assert service in compose["services"]
    assert "backend" in compose["services"][service]["networks"]
    assert "backend" in compose["services"][SERVICE]["networks"]


def test_dev_file_publishes_the_service_on_loopback_only(compose, compose_dev):
    assert compose_dev["services"][SERVICE]["ports"] == ["127.0.0.1:8000:8000"]
    for name, service in compose_dev["services"].items():
        assert name in compose["services"]
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)


def test_env_example_holds_no_secret_values():
    values = example_values()

    assert values["DJANGO_SECRET_KEY"] == ""
    assert values["POSTGRES_PASSWORD"] == ""
    assert values["ADMIN_API_KEY"] == ""


# --- Every environment variable the code reads is documented -------------------

ENV_READERS = {"str", "bool", "int", "float", "list", "db_url", "url", "json", "path"}
ENVIRON_READERS = {"get", "setdefault", "pop"}


def variables_read_by(tree: ast.AST) -> set[str]:
    """Names passed as literals to env.X(), env_list(), os.environ / os.getenv."""
    names = set()
    for node in ast.walk(tree):
        target = None
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            if isinstance(func, ast.Name) and func.id in {"env", "env_list"}:
                target = node.args[0]
            elif isinstance(func, ast.Attribute):
                owner, attr = ast.unparse(func.value), func.attr
                reads = (
                    (owner == "env" and attr in ENV_READERS)
                    or (owner.endswith("environ") and attr in ENVIRON_READERS)
                    or (owner == "os" and attr == "getenv")
                )
                if reads:
                    target = node.args[0]
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value).endswith(
            "environ"
        ):
            target = node.slice
        if isinstance(target, ast.Constant) and isinstance(target.value, str):
            names.add(target.value)
    return names


def project_sources() -> list[Path]:
    return [
        path
        for package in ("gateway_site", "likes", "docker")
        for path in (BASE_DIR / package).rglob("*.py")
        if "migrations" not in path.parts
    ]


def variables_read_by_the_project() -> set[str]:
    names = set()
    for path in project_sources():
        names |= variables_read_by(ast.parse(path.read_text(), str(path)))
    for script in (BASE_DIR / "docker").glob("*.sh"):
        names |= set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", script.read_text()))
    # <SERVICE>_URL: one per service of the example gateway services file.
    services = tomllib.loads(
        (BASE_DIR / "gateway_site/services.example.toml").read_text()
    )
    names |= {f"{name.upper()}_URL" for name in services["services"]}
    # <SERVICE>_HMAC_SECRET: the same, for signing (gateway/config.secret_var).
    names |= {f"{name.upper()}_HMAC_SECRET" for name in services["services"]}
    return names


def readme_configuration() -> str:
    return (BASE_DIR / "docs/configuration.md").read_text()


def test_the_scan_finds_variables_read_in_every_way():
    code = (
        "env.str('A'); env.bool('B', default=True); env_list('C', []);"
        "os.environ.get('D'); os.environ['E']; os.getenv('F');"
        "os.environ.setdefault('G', 'x'); env.db_url('H'); print('NOT')"
    )

    assert variables_read_by(ast.parse(code)) == set("ABCDEFGH")


def test_the_scan_sees_the_projects_known_variables():
    found = variables_read_by_the_project()

    assert {"DJANGO_SECRET_KEY", "GUNICORN_TIMEOUT", "WEB_CONCURRENCY"} <= found
    assert {"LIKES_POST_RATE", "MIGRATE_ON_START", "ALLOWED_HOSTS"} <= found


def test_every_variable_the_code_reads_is_in_env_example():
    missing = variables_read_by_the_project() - set(example_values())

    assert not missing, f"add to .env.docker.example: {sorted(missing)}"


def test_every_variable_the_code_reads_is_in_the_readme_configuration():
    section = readme_configuration()
    missing = {
        name
        for name in variables_read_by_the_project()
        if f"| `{name}` |" not in section
    }

    assert not missing, f"add to docs/configuration.md: {sorted(missing)}"


def test_env_example_names_only_variables_that_something_reads():
    unknown = (
        set(example_values()) - variables_read_by_the_project() - READ_OUTSIDE_THE_CODE
    )

    assert not unknown, f"nothing reads {sorted(unknown)}"


# --- The container health check against a real server --------------------------


def healthcheck(**env):
    return subprocess.run(
        [sys.executable, str(BASE_DIR / "docker/healthcheck.py")],
        env=project_env(**env),
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.live
def test_healthcheck_names_a_host_the_service_allows(tmp_path):
    # 127.0.0.1 is allowed too only so that the test harness sees it start.
    hosts = '[".example.com", "127.0.0.1"]'
    env = project_env(DATA_DIR=str(tmp_path), ALLOWED_HOSTS=hosts)
    manage("migrate", "--noinput", env=env)

    with gunicorn(env, workers=1) as server:
        port = server.base_url.rsplit(":", 1)[1]
        healthy = healthcheck(API_GATEWAY_PORT=port, ALLOWED_HOSTS=hosts)
        wrong_host = healthcheck(API_GATEWAY_PORT=port, ALLOWED_HOSTS="likes.invalid")

    assert healthy.returncode == 0, healthy.stderr
    assert wrong_host.returncode == 1  # Django answered 400: the Host matters
    assert "400" in wrong_host.stderr


@pytest.mark.live
def test_healthcheck_is_not_redirected_to_https_and_refuses_redirects(tmp_path):
    env = project_env(DATA_DIR=str(tmp_path), SECURE_SSL_REDIRECT="true")
    manage("migrate", "--noinput", env=env)

    with gunicorn(env, workers=1) as server:
        port = server.base_url.rsplit(":", 1)[1]
        exempt = healthcheck(API_GATEWAY_PORT=port)
        redirected = httpx.get(f"{server.base_url}/likes/x")

    assert exempt.returncode == 0, exempt.stderr
    assert redirected.status_code == HTTPStatus.MOVED_PERMANENTLY  # others still go


def test_healthcheck_fails_when_nothing_answers():
    result = healthcheck(API_GATEWAY_PORT=str(free_port()))

    assert result.returncode == 1
    assert "unhealthy" in result.stderr


# --- The image's steps, run here -------------------------------------------------


def test_collectstatic_runs_with_the_build_step_environment(tmp_path):
    """The Dockerfile's collectstatic line, with its own variables, succeeds."""
    (line,) = [a for op, a in dockerfile_instructions() if "collectstatic" in a]
    words = shlex.split(line.split("&&")[0])
    assignments = dict(w.split("=", 1) for w in words if re.match(r"[A-Z_]+=", w))
    command = [w for w in words if "=" not in w]
    assert command[:2] == ["python", "manage.py"]
    assignments["DATA_DIR"] = str(tmp_path / "build-data")
    env = project_env(**assignments, STATIC_ROOT=str(tmp_path / "static"))

    result = subprocess.run(
        [sys.executable, *command[1:]],
        env=env,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "static" / "staticfiles.json").exists()  # the manifest
    assert any((tmp_path / "static" / "likes").glob("likes.*.js"))


@pytest.mark.live
def test_entrypoint_migrates_then_becomes_gunicorn(tmp_path):
    port = free_port()
    env = project_env(
        DATA_DIR=str(tmp_path),
        API_GATEWAY_HOST="127.0.0.1",
        API_GATEWAY_PORT=str(port),
        WEB_CONCURRENCY="1",
        PATH=f"{BIN}:{os.environ['PATH']}",
    )
    proc = subprocess.Popen(
        [str(ENTRYPOINT), str(BIN / "gunicorn"), "-c", "gateway_site/gunicorn.conf.py"],
        env=env,
        cwd=BASE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", proc, timeout=60)
        # exec: the entrypoint's process is now gunicorn's master itself.
        command = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        liked = httpx.post(f"http://127.0.0.1:{port}/likes/after-migrate")
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0]

    assert any(part.endswith(b"gunicorn") for part in command[:2]), command
    assert liked.status_code == 200
    assert "Applying likes.0001_initial" in output
    assert proc.returncode == 0


def test_entrypoint_refuses_a_bad_migrate_on_start():
    result = subprocess.run(
        [str(ENTRYPOINT), "true"],
        env=project_env(MIGRATE_ON_START="sometimes"),
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 64
    assert "MIGRATE_ON_START must be true or false" in result.stderr


def test_entrypoint_can_skip_migrations(tmp_path):
    result = subprocess.run(
        [str(ENTRYPOINT), "echo", "started"],
        env=project_env(DATA_DIR=str(tmp_path), MIGRATE_ON_START="false"),
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == "started\n"
    assert not (tmp_path / "likes.sqlite3").exists()
