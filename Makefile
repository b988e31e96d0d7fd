# Two commands for a fresh machine: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= $(or $(API_GATEWAY_HOST),127.0.0.1)
PORT ?= $(or $(API_GATEWAY_PORT),8000)
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: run test lint bench check-migrations clean screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.base-installed: requirements/base.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/base.txt
	touch $@

$(VENV)/.dev-installed: $(wildcard requirements/*.txt) | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	touch $@ $(VENV)/.base-installed

# A per-install random secret, readable only by its owner; never committed.
.env: | $(BIN)/python
	umask 077 && $(BIN)/python -c "import secrets; \
	print('DJANGO_SECRET_KEY=' + secrets.token_urlsafe(50))" > $@
	@echo "Wrote a new DJANGO_SECRET_KEY to .env"

run: $(VENV)/.base-installed .env
	@$(BIN)/python -m gateway_site.portcheck $(HOST) $(PORT)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	@echo
	@echo "  Likes API:  http://$(HOST):$(PORT)/likes/hello-world   (GET reads, POST likes)"
	@echo "  Batch:      http://$(HOST):$(PORT)/likes/?ids=hello-world,another-post"
	@echo "  Admin:      http://$(HOST):$(PORT)/admin/"
	@echo "  Create an admin user:  $(BIN)/python manage.py createsuperuser"
	@echo "  Stats API key:  KEY=\$$($(BIN)/python manage.py likes_apikey create --name me)"
	@echo "                  curl -H \"X-API-Key: \$$KEY\" http://$(HOST):$(PORT)/api/stats"
	@echo "  Stop with Ctrl-C."
	@echo
	API_GATEWAY_HOST=$(HOST) API_GATEWAY_PORT=$(PORT) \
		exec $(BIN)/gunicorn -c gateway_site/gunicorn.conf.py

test: $(VENV)/.dev-installed check-migrations
	$(BIN)/pytest $(PYTEST_ARGS)

# Build the Docker image and run it with podman (as root; README, "Docker").
.PHONY: test-container
test-container: $(VENV)/.dev-installed
	$(BIN)/pytest tests/test_container.py --no-cov -s $(PYTEST_ARGS)

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Runtime dependencies only, as in the Docker image: what the benchmark runs.
DEPLOY_VENV := .venv-deploy
$(DEPLOY_VENV)/.installed: requirements/base.txt
	$(PYTHON) -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/base.txt
	touch $@

# Side-by-side benchmark against the original-style service (needs wrk).
bench: $(VENV)/.dev-installed $(DEPLOY_VENV)/.installed
	$(BIN)/python -m tests.benchmarks.run --deploy-bin $(DEPLOY_VENV)/bin $(BENCH_ARGS)

# The API gateway's added latency and throughput against a direct call (needs wrk).
.PHONY: bench-gateway
bench-gateway: $(VENV)/.dev-installed
	$(BIN)/python -m tests.benchmarks.gateway $(BENCH_ARGS)

# Redraw the README's screenshots (docs/images/) from a demo site (needs chromium).
screenshots: $(VENV)/.dev-installed
	$(BIN)/python scripts/screenshots.py

check-migrations: $(VENV)/.dev-installed
	DJANGO_SETTINGS_MODULE=gateway_site.settings.test \
		$(BIN)/python manage.py makemigrations --check --dry-run --verbosity 1

clean:
	rm -rf $(VENV) $(DEPLOY_VENV) staticfiles .pytest_cache .coverage

# What counting one request against a rate limit costs, per store.
.PHONY: bench-ratelimit
bench-ratelimit: $(VENV)/.dev-installed
	$(BIN)/python -m tests.benchmarks.ratelimit_store $(BENCH_ARGS)

# How the likes API is served: sync, gthread and asyncio workers, with slow
# clients (needs wrk).
.PHONY: bench-serving
bench-serving: $(VENV)/.dev-installed
	$(BIN)/python -m tests.benchmarks.serving $(BENCH_ARGS)

# What the observability stack costs GET /likes/<id>, on vs off (needs wrk).
.PHONY: bench-observability
bench-observability: $(VENV)/.dev-installed $(DEPLOY_VENV)/.installed
	$(BIN)/python -m tests.benchmarks.observability --deploy-bin $(DEPLOY_VENV)/bin $(BENCH_ARGS)
