# One task runner for setup, generate, lint, test and run.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup run test lint typecheck generate check-generated policy-check bench bench-quick clean soak

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

## Start the server on the embedded default: SQLite file, no Redis, demo organization loaded.
run: setup
	$(BIN)/orgauthz serve --database-url sqlite:///orgauthz-demo.db --demo --insecure-dev

## Set up, check generated stubs and lint (ruff, mypy strict), then run the whole test suite
## (it starts its own PostgreSQL clusters and redis-servers).
test: setup check-generated lint
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

## Soak (not part of `make test`): a mixed workload on two replicas (PostgreSQL + Redis);
## fails on any error, wrong answer, or resident memory growth above 5% after warm-up.
SOAK_SECONDS ?= 300
soak: setup
	$(BIN)/python -m bench.soak --seconds $(SOAK_SECONDS)

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

## Review policies/: lint the catalog and run its policy tests on the engine and over gRPC.
policy-check: setup
	$(BIN)/orgauthz policy lint policies
	$(BIN)/orgauthz policy test policies

generate: setup
	$(BIN)/python -m orgauthz.tools.generate

check-generated: setup
	$(BIN)/python -m orgauthz.tools.generate --check

## Benchmarks (SPEC §5): the large data set on PostgreSQL (127.0.0.1:5432), scaling curve,
## bench/results/latest.json and docs/benchmarks.md. `make bench ARGS=--quick`: small, SQLite, < 2 min.
bench: setup
	$(BIN)/python -m bench.run $(ARGS)

bench-quick: setup
	$(BIN)/python -m bench.run --quick $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info orgauthz-demo.db
