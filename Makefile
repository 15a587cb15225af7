# One place for the commands the README, CI and developers run.
# Every target that needs Python depends on the venv stamp, so a fresh machine installs once
# and a second run reuses .venv (the stamp is newer than the requirement files).
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYTHONPATH := $(CURDIR):$(CURDIR)/plugins
# pip on some machines carries a site-wide constraints file; ours is the only one that counts here.
export PIP_CONSTRAINT :=
# Some machines list local package indexes that do not exist; pip warns once per package.
PIP_NOISE_FILTER := { grep -v "^WARNING: Location '.*' is ignored" || true; }

.PHONY: demo test test-fast test-stack ui ui-stop airflow lint format bench lock clean check-config

$(STAMP): requirements.txt requirements-local.txt requirements-dev.txt constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip 2>&1 | $(PIP_NOISE_FILTER)
	$(BIN)/pip install --quiet -r requirements-dev.txt -c constraints.txt 2>&1 | $(PIP_NOISE_FILTER)
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m include.demo $(ARGS)

# The suite waits on servers and trainings more than it computes: two workers (pytest-xdist) halve
# its wall time on CI's 2 cores. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -n $(TEST_WORKERS) $(ARGS)

# Validate every pipeline config the way DAG parsing does (one line per file; exit 1 if any is invalid).
check-config: $(STAMP)
	$(BIN)/python -m include.pipeline.check_config $(ARGS)

# The tier for every edit: tests that need no server and no DAG run (markers set in tests/conftest.py).
test-fast: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -m fast -q $(ARGS)

# The real Airflow stack on loopback, state in .stack/ (include/stack.py): UI and REST API at
# http://127.0.0.1:$(UI_PORT); `make airflow ARGS="dags list"` runs the CLI against it from any shell.
# STACK_DB_URL=postgresql+psycopg2://... puts the metadata DB on PostgreSQL instead of SQLite.
UI_PORT ?= 8080
# UI_EXECUTOR=celery: Redis and two Celery workers on loopback instead of the LocalExecutor.
UI_EXECUTOR ?= local
ui: $(STAMP)
	$(BIN)/python -m include.stack up --port $(UI_PORT) --executor $(UI_EXECUTOR)

ui-stop:
	$(BIN)/python -m include.stack down

airflow:
	@$(BIN)/python -m include.stack airflow $(ARGS)

# The real-stack test tier (tests/stack): real scheduler, triggerer, API server, PostgreSQL, browser.
test-stack: $(STAMP)
	$(BIN)/pytest -m stack tests/stack $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

# Regenerate constraints.txt from the current venv after changing requirements*.txt.
lock:
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip freeze --exclude-editable | sort > constraints.txt
	touch $(STAMP)

clean:
	rm -rf $(VENV) .pytest_cache
