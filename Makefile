# Every target creates the virtual environment on first use, from the lock file.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Client generators: openapi-python-client in a venv of its own, openapi-ts from npm.
TOOLS_STAMP := $(VENV)/tools/.installed-stamp
NODE_STAMP  := clients/typescript/node_modules/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: install clients clients-tools run test test-pgbouncer lint typecheck check migrate bench profile clean lock infra cluster

install: $(STAMP)

$(STAMP): pyproject.toml requirements/dev.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements/dev.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

$(TOOLS_STAMP): requirements/clients.lock $(STAMP)
	test -x $(VENV)/tools/bin/python || $(PYTHON) -m venv $(VENV)/tools
	$(VENV)/tools/bin/python -m pip install -q --disable-pip-version-check -r requirements/clients.lock
	touch $(TOOLS_STAMP)

# Node.js (>= 20.19) comes with the machine or Debian; without it the TypeScript client's
# tests skip off CI and fail on CI, saying so.
$(NODE_STAMP): clients/typescript/package-lock.json
	if command -v npm >/dev/null; then \
	  cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error && touch $(CURDIR)/$(NODE_STAMP); \
	else echo "npm not found: the TypeScript client cannot be generated or tested"; fi

clients-tools: $(TOOLS_STAMP) $(NODE_STAMP)

## Regenerate the typed clients in clients/ from the API's OpenAPI document.
clients: clients-tools
	$(BIN)/python -m clients.generate

## Start the API on http://$(HOST):$(PORT) (SQLite ./catalog.db unless DATABASE_URL is set).
run: $(STAMP)
	$(BIN)/catalog db upgrade
	$(BIN)/catalog serve --host $(HOST) --port $(PORT)

migrate: $(STAMP)
	$(BIN)/catalog db upgrade

## The whole suite, on SQLite and PostgreSQL (TEST_POSTGRES_URL, default the local server).
test: $(STAMP) clients-tools
	$(BIN)/pytest $(PYTEST_ARGS)
	$(MAKE) test-pgbouncer

## The PostgreSQL half of the HTTP suite again, through a real PgBouncer in transaction mode.
test-pgbouncer: $(STAMP)
	TEST_DATABASE_POOLER=transaction $(BIN)/pytest tests/api -k postgresql $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench deploy clients
	$(BIN)/ruff format --check src tests bench deploy clients

typecheck: $(STAMP)
	$(BIN)/mypy

check: test lint typecheck

bench: $(STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

## Where a request's CPU goes: py-spy over bench.floor (the service in-process), as a flame graph.
profile: $(STAMP)
	$(BIN)/py-spy record -o profile.svg -- $(BIN)/python -m bench.floor --apps service --rounds 9 $(PROFILE_ARGS)

## Debian packages for the real-infrastructure tests and `make cluster` (as root; no daemons).
infra:
	bash deploy/install-packages.sh

## etcd + 3 Patroni + HAProxy + PgBouncer on free local ports until Ctrl-C (deploy/README.md).
cluster: $(STAMP) infra
	$(BIN)/python -m deploy.cluster $(CLUSTER_ARGS)

## Re-resolve pinned versions after editing pyproject.toml dependencies.
lock:
	$(PYTHON) -m pip install -q uv && $(PYTHON) -m uv pip compile pyproject.toml --extra dev \
		--python-version 3.11 -o requirements/dev.lock
	$(PYTHON) -m uv pip compile requirements/clients.in --python-version 3.11 \
		-o requirements/clients.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
