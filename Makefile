# Each target sets itself up on a fresh machine: the first run creates .venv and installs
# candlekeeper with its test extras; later runs reuse it until pyproject.toml changes.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
ARGS ?=

.PHONY: install demo test lint unit bench clean services

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## the main job, offline: built-in simulator -> real pipeline -> SQLite, with the live dashboard
demo: $(STAMP)
	$(BIN)/candlekeeper demo $(ARGS)

## the full suite: lint, strict typing, every test (CI runs exactly this); PostgreSQL and
## nats-server are installed from Debian's packages if missing (tests run private instances)
test: $(STAMP) lint services
	$(BIN)/pytest -q -p no:cacheprovider -n 4 --dist worksteal $(ARGS)

## the fast loop: everything but the end-to-end tests over real sockets (no lint)
unit: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider -n 2 --dist worksteal -m "not integration" $(ARGS)

services:
	./scripts/install-test-services.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py $(ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build src/*.egg-info
