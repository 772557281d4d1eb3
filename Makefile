# `make run` and `make test` work on a fresh Debian machine as root: each installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
export LAUNCHBAY_TEST_POSTGRES_URL ?= postgresql+psycopg://launchbay:launchbay@127.0.0.1:5432/postgres

.PHONY: run test test-fast install services bench clean

run: install
	src/launchbay/system_scripts/ensure-docker.sh
	src/launchbay/system_scripts/ensure-caddy.sh
	$(BIN)/launchbay serve

# Every test on both cores (pytest-xdist, a file per worker at a time; the end-to-end tests
# each run their own control plane, Caddy and ports); then the schemathesis contract runs,
# which xdist cannot distribute.
test: install services
	$(BIN)/pytest -m "not contract" -n 2 --dist loadfile
	$(BIN)/pytest -m contract

# The fast set: everything but the end-to-end tests marked `slow`.
test-fast: install services
	$(BIN)/pytest -m "not slow and not contract" -n 2 --dist loadfile
	$(BIN)/pytest -m contract

install: $(STAMP)

$(STAMP): pyproject.toml
	scripts/ensure-python.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

# What the tests use: PostgreSQL, the Docker engine, Caddy and Pebble, and the tools test images
# are built from.
services:
	scripts/ensure-postgres.sh
	src/launchbay/system_scripts/ensure-docker.sh
	src/launchbay/system_scripts/ensure-caddy.sh --with-pebble
	scripts/ensure-test-tools.sh

# Every benchmark; each prints its figures on its last line.
bench: install services
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache
