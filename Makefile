# One task runner for setup, generate, lint, test and run.
#
# Everything installed comes from a committed lock: requirements/uv.txt pins uv itself (with
# hashes), uv.lock pins every runtime and development package (with hashes) and
# requirements/lowest.txt the lowest declared versions. `make lock` refreshes them on purpose.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
TOOLS := .venv-uv
UV := $(TOOLS)/bin/uv
LOWEST := .venv-lowest
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never
export UV_NO_PROGRESS := 1

.PHONY: setup run test lint typecheck generate check-generated check-lock lock test-lowest policy-check bench bench-quick clean soak

setup: $(STAMP)

$(UV): requirements/uv.txt
	@test -x $(TOOLS)/bin/python || $(PY) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install -q --disable-pip-version-check --require-hashes -r requirements/uv.txt
	@touch $(UV)

# Installs exactly uv.lock (and removes what it does not name); fails when the lock is out of
# date with pyproject.toml instead of resolving anew.
$(STAMP): pyproject.toml uv.lock $(UV)
	$(UV) sync --locked --extra dev --python $(PY)
	@touch $(STAMP)

## Fail when uv.lock no longer matches pyproject.toml (run `make lock`).
check-lock: $(UV)
	$(UV) lock --check --python $(PY)

## Refresh the locks to the newest releases pyproject.toml admits, install them and regenerate
## the stubs (their output moves with the pinned grpcio-tools; tests/test_packaging.py then
## asks for the matching grpcio and protobuf floors).
lock: $(UV)
	$(UV) lock --upgrade --python $(PY)
	$(UV) pip compile pyproject.toml --extra test --resolution lowest-direct --universal \
	  --python-version 3.11 --generate-hashes --upgrade --no-header -q -o requirements/lowest.txt
	$(UV) sync --locked --extra dev --python $(PY)
	@touch $(STAMP)
	$(BIN)/python -m orgauthz.tools.generate

## The decision tests against the lowest versions pyproject.toml declares (requirements/lowest.txt).
test-lowest: $(UV)
	$(UV) venv -q --allow-existing --python $(PY) $(LOWEST)
	$(UV) pip sync -q --python $(LOWEST)/bin/python --require-hashes requirements/lowest.txt
	$(UV) pip install -q --python $(LOWEST)/bin/python --no-deps -e .
	$(LOWEST)/bin/python -m pytest -q -p no:cacheprovider $(LOWEST_TESTS)

LOWEST_TESTS ?= tests/decisions/test_batch_cache.py tests/decisions/test_equivalence.py tests/decisions/test_gc.py \
  tests/decisions/test_loading.py tests/decisions/test_rules.py tests/api/test_server.py \
  tests/store/test_contract.py tests/replicas/test_tiers.py tests/test_packaging.py tests/guards tests/envoy

## Start the server on the embedded default: SQLite file, no Redis, demo organization loaded.
run: setup
	$(BIN)/orgauthz serve --database-url sqlite:///orgauthz-demo.db --demo --insecure-dev

## Set up, check generated stubs and lint (ruff, mypy strict), then run the whole test suite
## (it starts its own PostgreSQL clusters and redis-servers).
test: check-lock setup check-generated lint
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
	rm -rf $(VENV) $(TOOLS) $(LOWEST) build *.egg-info orgauthz-demo.db
