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

.PHONY: run test install mariadb clients lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP) mariadb clients

# MariaDB server and client come from the OS packages, installed only when missing.
mariadb:
	@command -v mariadbd >/dev/null 2>&1 || test -x /usr/sbin/mariadbd || \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q mariadb-server mariadb-client)
	@command -v sysbench >/dev/null 2>&1 || \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -q sysbench >/dev/null 2>&1 || \
	   echo "sysbench not installed: 'dal bench --sysbench' will be unavailable")
	@command -v haproxy >/dev/null 2>&1 || test -x /usr/sbin/haproxy || \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy >/dev/null 2>&1 || \
	   echo "haproxy not installed: 'dal bench --hop' will go on without the TCP hop")

# Client libraries the prepared-statement tests drive (each skipped with a reason if absent):
# the `mariadb` Python connector and mysqlclient (both build against libmariadb-dev), MariaDB
# Connector/J, and node mysql2 under tests/clients/node.
clients: $(STAMP)
	@command -v mariadb_config >/dev/null 2>&1 || \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -q libmariadb-dev >/dev/null 2>&1 || \
	   echo "libmariadb-dev not installed: the mariadb connector tests will be skipped")
	@test -e /usr/share/java/mariadb-java-client.jar || \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -q libmariadb-java >/dev/null 2>&1 || \
	   echo "libmariadb-java not installed: the Connector/J tests will be skipped")
	@$(BIN)/python -c 'import mariadb' 2>/dev/null || $(BIN)/pip install -q 'mariadb>=1.1,<2' || \
	  echo "pip mariadb not installed: the mariadb connector tests will be skipped"
	@$(BIN)/python -c 'import MySQLdb' 2>/dev/null || $(BIN)/pip install -q 'mysqlclient>=2.2,<3' || \
	  echo "pip mysqlclient not installed: its multi-statement tests will be skipped"
	@test -d tests/clients/node/node_modules/mysql2 || \
	  (cd tests/clients/node && npm install --no-audit --no-fund --silent) || \
	  echo "npm mysql2 not installed: the node tests will be skipped"

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
