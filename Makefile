# Billumy: `make serve` and `make test` do all the setup on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install serve test lint typecheck unit services bench clean

install: $(STAMP)

# Reinstall only when the dependency list changes; pip caches the compiled llama.cpp wheel.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

serve: install
	$(BIN)/billumy serve

services:
	bash scripts/services.sh

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest -q

test: install services lint typecheck
	$(BIN)/pytest -q

bench: install services
	$(BIN)/python benchmarks/engine_overhead.py
	$(BIN)/python benchmarks/store.py
	$(BIN)/python benchmarks/cache.py
	$(BIN)/python benchmarks/proxy_overhead.py
	$(BIN)/python benchmarks/insights.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
