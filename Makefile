# Two commands matter: `make run` and `make test`. Everything else is for developers.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export FLASK_APP := wsgi.py
# The flask command would read the first .env in any folder above this one; config.py reads ours.
export FLASK_SKIP_DOTENV := 1

.PHONY: venv run admin flask test lint fmt migrate bench bench-quick bench-10m bench-mail bench-profile wrk fuzz faults clean image image-test

# Two layers: `make run` installs only what the app needs (requirements.txt); every
# developer target adds the test, lint, fuzz and benchmark tools (requirements-dev.txt).
# `make lint` and `make fmt` need the linter alone (requirements-lint.txt, which -dev includes).
RUNTIME := $(VENV)/.installed-runtime
DEV := $(VENV)/.installed-dev
LINT := $(VENV)/.installed-lint

define ensure_venv
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found; set PYTHON=python3"; exit 1; }
	@test -d $(VENV) || { echo "==> creating the virtualenv in $(VENV)"; $(PYTHON) -m venv $(VENV); }
endef

$(RUNTIME): requirements.txt
	$(ensure_venv)
	@echo "==> installing the app's dependencies (requirements.txt) into $(VENV)"
	@$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

$(DEV): $(RUNTIME) requirements-dev.txt requirements-lint.txt
	@echo "==> installing the test and developer tools (requirements-dev.txt: pytest, Schemathesis, Playwright, ...);"
	@echo "    the first time this downloads a few hundred MB"
	@$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

$(LINT): requirements-lint.txt
	$(ensure_venv)
	@echo "==> installing the linter only (requirements-lint.txt) into $(VENV)"
	@$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-lint.txt
	@touch $@

venv: $(RUNTIME)

run: $(RUNTIME)
	@echo "==> migrating the database (flask db upgrade)"
	$(BIN)/flask db upgrade
	@echo "==> starting gunicorn (gunicorn.conf.py) and a mail worker (flask worker); Ctrl-C stops both"
	@echo "    without MAIL_SERVER, mail is written to instance/mail/, one file per message"
	BIN=$(BIN) exec scripts/run.sh

# The project's own entry to the `flask` command, with FLASK_SKIP_DOTENV (exported above):
# `make admin EMAIL=you@example.com` (the first admin), `make flask ARGS="users list"`.
admin: $(RUNTIME)
	@test -n "$(EMAIL)" || { echo 'usage: make admin EMAIL=you@example.com (the password is prompted)'; exit 2; }
	$(BIN)/flask db upgrade
	$(BIN)/flask users create-admin '$(EMAIL)'

flask: $(RUNTIME)
	$(BIN)/flask $(ARGS)

test: $(DEV)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(LINT)
	$(BIN)/ruff check .

fmt: $(LINT)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

migrate: $(RUNTIME)
	$(BIN)/flask db migrate -m "$(m)"

# Benchmark (bench/run.py): a fresh PostgreSQL database `app_bench`, the app under gunicorn, wrk.
# Options go through BENCH_ARGS (make passes no `--option` of its own to a recipe), e.g. today against
# an earlier commit, both served on one database and alternated (bench/baseline.py):
#   make bench BENCH_ARGS="--baseline 40420a2"    make bench-quick BENCH_ARGS="--baseline 40420a2"
WRK := $(shell command -v wrk 2>/dev/null)

wrk:
ifeq ($(WRK),)
	@echo "installing wrk (Debian package)"
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq wrk
endif

bench: $(DEV) wrk
	$(BIN)/python bench/run.py $(BENCH_ARGS)

bench-quick: $(DEV) wrk
	$(BIN)/python bench/run.py --quick $(BENCH_ARGS)

# Ten million posts, 100,000 users and their follows (issue 31), in `app_bench_10m` (BENCH_10M_DATABASE):
# seeded once by `flask seed` (COPY, indexes built after the load) and kept, so a rerun reuses it
# (`BENCH_ARGS=--fresh` seeds again). Every row at 4 and at 16 connections, then the search rows
# alternated with the first page at both; results in bench/out/results-10m-c4.md and -c16.md.
BENCH_10M_DATABASE ?= app_bench_10m
bench-10m: $(DEV) wrk
	$(BIN)/python bench/run.py --mode 10m --database $(BENCH_10M_DATABASE) --connections 4 $(BENCH_ARGS)
	$(BIN)/python bench/run.py --mode 10m --database $(BENCH_10M_DATABASE) --connections 16
	$(BIN)/python bench/search_rows.py --mode 10m --database $(BENCH_10M_DATABASE) --connections 4 16

# Password resets against a mail server that takes 5 s a message, under list load, with two
# `flask worker`s (bench/mail.py, its own database `app_bench_mail`); prints a table for bench/results.md.
bench-mail: $(DEV) wrk
	$(BIN)/python bench/mail.py $(BENCH_ARGS)

bench-profile: $(DEV)
	$(BIN)/python bench/profile.py

# Schemathesis against /openapi.json on gunicorn + a throwaway PostgreSQL db (FUZZ_EXAMPLES, FUZZ_MAX_TIME).
fuzz: $(DEV)
	scripts/fuzz/run.sh

# Fault scenarios (PostgreSQL restart, worker SIGKILL, races, slow clients, standby stop); tables to docs/faults.md.
faults: $(DEV)
	scripts/faults/run.sh

# The OpenAPI document through Redocly CLI (recommended rules, warnings fail) and Spectral (spectral:oas), both
# clean; tests/ops/test_openapi_docs.py asserts the same facts without them. Needs Node.js (npm):
# the linters are installed once under $(OPENAPI_LINT_DIR), never into the project.
OPENAPI_LINT_DIR ?= $(VENV)/openapi-lint
OPENAPI_LINTERS := @redocly/cli@2.77.0 @stoplight/spectral-cli@6.16.3
.PHONY: openapi-lint
openapi-lint: $(RUNTIME)
	@command -v npm >/dev/null 2>&1 || { echo "openapi-lint needs Node.js (npm)"; exit 1; }
	@test -x $(OPENAPI_LINT_DIR)/node_modules/.bin/spectral || { \
		echo "==> installing $(OPENAPI_LINTERS) into $(OPENAPI_LINT_DIR)"; mkdir -p $(OPENAPI_LINT_DIR) && \
		npm install --prefix $(OPENAPI_LINT_DIR) --no-audit --no-fund --silent $(OPENAPI_LINTERS); }
	@printf 'extends: ["spectral:oas"]\n' > $(OPENAPI_LINT_DIR)/spectral.yaml
	APP_ENV=testing PUBLIC_BASE_URL=https://api.example.org $(BIN)/flask openapi write --format json $(OPENAPI_LINT_DIR)/openapi.json
	REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
		$(OPENAPI_LINT_DIR)/node_modules/.bin/redocly lint --extends recommended-strict $(OPENAPI_LINT_DIR)/openapi.json
	$(OPENAPI_LINT_DIR)/node_modules/.bin/spectral lint --fail-severity hint \
		--ruleset $(OPENAPI_LINT_DIR)/spectral.yaml $(OPENAPI_LINT_DIR)/openapi.json

# The production image (Dockerfile): `make image`, tagged $(IMAGE):$(VERSION) and $(IMAGE):latest, with
# OCI labels. BuildKit builds it: through buildx where the docker client has it, else through Debian's
# docker.io client, which has BuildKit built in (the classic builder copies the whole filesystem at
# every step on the vfs storage driver: minutes instead of seconds).
IMAGE ?= users-posts
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
SOURCE ?= $(shell git remote get-url origin 2>/dev/null)
DOCKER ?= $(shell if docker buildx version >/dev/null 2>&1; then echo docker; \
	elif [ -x /usr/bin/docker ]; then echo /usr/bin/docker; else echo docker; fi)

image:
	DOCKER_BUILDKIT=1 $(DOCKER) build --network host \
		--build-arg VERSION=$(VERSION) --build-arg REVISION=$$(git rev-parse HEAD 2>/dev/null || echo unknown) \
		--build-arg SOURCE=$(SOURCE) --build-arg CREATED=$$(date -u +%Y-%m-%dT%H:%M:%SZ) \
		-t $(IMAGE):$(VERSION) -t $(IMAGE):latest .

# Build the image and test it against the machine's PostgreSQL and Redis (scripts/image/test.sh).
image-test: $(DEV)
	scripts/image/test.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
