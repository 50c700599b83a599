# Koherent's developer commands. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.koherent-installed
DEMO_STAMP := $(VENV)/.koherent-demo-installed

.DEFAULT_GOAL := help
.PHONY: help setup demo test test-fast lint format matrix bench soak docs clean

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Koherent needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade 'pip>=25.1'
	$(BIN)/python -m pip install --quiet -e '.[celery,strawberry,httpx,requests,tasks,postgres]' \
	  --group test --group lint --group dev --group bench --group example --group docs
	touch $(STAMP)

# The demo needs fewer extras; a .venv made by `make setup` already has them.
$(DEMO_STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Koherent needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	if [ ! $(STAMP) -nt pyproject.toml ]; then \
	  $(BIN)/python -m pip install --quiet --upgrade 'pip>=25.1' && \
	  $(BIN)/python -m pip install --quiet -e '.[celery,strawberry]' --group example; fi
	touch $(DEMO_STAMP)

setup: $(STAMP) ## Create .venv and install Koherent with every extra

demo: $(DEMO_STAMP) ## The example end to end: GraphQL request, Celery worker, history, revert
	$(BIN)/python examples/demo.py $(ARGS)

test: $(STAMP) ## Lint, type-check, run the suite on PostgreSQL, SQLite and MySQL/MariaDB, and one more matrix cell
	$(BIN)/python scripts/run_tests.py $(if $(ARGS),-- $(ARGS))

test-fast: $(STAMP) ## SQLite only, no lint, no worker/server/subprocess tests (-m "not processes"; ARGS="-k name")
	$(BIN)/python scripts/run_tests.py --no-lint --no-matrix --backend sqlite -- -m "not processes" $(ARGS)

lint: $(STAMP) ## ruff, mypy --strict and the import layers (lint-imports)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP) ## Format and autofix with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

matrix: $(STAMP) ## Every cell of the Python x Django matrix (nox)
	PYENV_VERSION=$$(pyenv versions --bare 2>/dev/null | tr '\n' ':') $(BIN)/nox

bench: $(STAMP) ## Benchmarks vs the peers: writes benchmarks/results.md, results.json, README table
	$(BIN)/python -m benchmarks $(ARGS)

soak: $(STAMP) ## Soak, crash, restart and fuzz scenarios at full size (about two hours; PostgreSQL, Redis, RabbitMQ)
	rm -f tests/soak/last-run.jsonl
	KOHERENT_SOAK=full $(BIN)/python scripts/run_tests.py --no-lint --no-matrix --backend postgres -- -m soak -s $(ARGS)
	$(BIN)/python -m tests.soak.render

docs: $(STAMP) ## Build the docs site strictly (site/), then serve it on http://127.0.0.1:8000/
	$(BIN)/mkdocs build --strict
	$(BIN)/mkdocs serve $(ARGS)

clean: ## Remove the virtualenv, nox environments and caches
	rm -rf $(VENV) .nox .mypy_cache .ruff_cache .pytest_cache tests/.koherent-test.sqlite3 tests/.koherent-test-other.sqlite3 examples/.data site
