# The two commands of the README: `make run` and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
CONFIG  ?= config/local.yaml
# Another copy of test.yaml (own ports and datadirs) lets two checkouts test side by side.
TESTCFG ?= config/test.yaml
# `make run SYNC=0` serves without the `dal sync` child that keeps the merchant copy current.
SYNC    ?= 1

.PHONY: run test install mariadb lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP) mariadb

# MariaDB server and client come from the OS packages, installed only when missing.
mariadb:
	@command -v mariadbd >/dev/null 2>&1 || test -x /usr/sbin/mariadbd || \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q mariadb-server mariadb-client)
	@command -v sysbench >/dev/null 2>&1 || \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -q sysbench >/dev/null 2>&1 || \
	   echo "sysbench not installed: 'dal bench --sysbench' will be unavailable")

run: install
	$(BIN)/dal localdb up --config $(CONFIG)
	$(BIN)/dal schema apply --config $(CONFIG)
	$(BIN)/dal certs --config $(CONFIG)
	$(BIN)/dal serve --config $(CONFIG) $(if $(filter 0,$(SYNC)),,--with-sync)

test: install
	$(BIN)/ruff check .
	$(BIN)/dal localdb up --config $(TESTCFG)
	$(BIN)/dal schema apply --config $(TESTCFG)
	DAL_TEST_CONFIG=$(TESTCFG) $(BIN)/python -m pytest -q $(PYTEST_ARGS); rc=$$?; $(BIN)/dal localdb down --config $(TESTCFG); exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	-$(BIN)/dal localdb down --config $(TESTCFG)
	rm -rf var/test
