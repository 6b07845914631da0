# Two commands matter: `make run` and `make test`. Everything else is for developers.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export FLASK_APP := wsgi.py
# The flask command would read the first .env in any folder above this one; config.py reads ours.
export FLASK_SKIP_DOTENV := 1

.PHONY: run test lint fmt migrate bench bench-quick bench-profile wrk fuzz faults clean

$(BIN)/activate: requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found; set PYTHON=python3"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(BIN)/activate

venv: $(BIN)/activate

run: $(BIN)/activate
	$(BIN)/flask db upgrade
	$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

test: $(BIN)/activate
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(BIN)/activate
	$(BIN)/ruff check .

fmt: $(BIN)/activate
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

migrate: $(BIN)/activate
	$(BIN)/flask db migrate -m "$(m)"

# Benchmark (bench/run.py): a fresh PostgreSQL database `app_bench`, the app under gunicorn, wrk.
WRK := $(shell command -v wrk 2>/dev/null)

wrk:
ifeq ($(WRK),)
	@echo "installing wrk (Debian package)"
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq wrk
endif

bench: $(BIN)/activate wrk
	$(BIN)/python bench/run.py

bench-quick: $(BIN)/activate wrk
	$(BIN)/python bench/run.py --quick

bench-profile: $(BIN)/activate
	$(BIN)/python bench/profile.py

# Schemathesis against /openapi.json on gunicorn + a throwaway PostgreSQL db (FUZZ_EXAMPLES, FUZZ_MAX_TIME).
fuzz: $(BIN)/activate
	scripts/fuzz/run.sh

# Fault scenarios (PostgreSQL restart, worker SIGKILL, races, slow clients); tables to docs/faults.md.
faults: $(BIN)/activate
	scripts/faults/run.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
