# Billumy: `make serve` and `make test` do all the setup on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install serve test lint typecheck unit services bench clean

# Reinstall only when the dependency list changes. llama.cpp is compiled by
# scripts/llama_build.py for this CPU without its AMX kernels (they crash on these machines),
# into a wheel cache keyed on the flags; then a self-test runs the model in a child process,
# and if it dies, one portable rebuild is tried. Both steps run on every `make install`, and
# cost a second when nothing changed (a venv carried to another CPU gets rebuilt).
$(STAMP): pyproject.toml scripts/llama_build.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python scripts/llama_build.py install
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)
	@$(BIN)/python scripts/llama_build.py install
	@$(BIN)/python scripts/llama_build.py selftest

serve: install
	$(BIN)/billumy serve

services:
	bash scripts/services.sh

lint: install
	$(BIN)/ruff check src tests benchmarks scripts evals examples
	$(BIN)/ruff format --check src tests benchmarks scripts evals examples

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
	$(BIN)/python benchmarks/load.py
	$(BIN)/python benchmarks/insights.py
	$(BIN)/python benchmarks/sources.py
	$(BIN)/python benchmarks/console.py
	$(BIN)/python benchmarks/insights_eval.py
	$(BIN)/python benchmarks/insights_eval.py --rows 0 --cases evals/insights/holdout.toml
	$(BIN)/python benchmarks/insights_eval.py --rows 0 --cases evals/insights/holdout2.toml
	$(BIN)/python benchmarks/insights_eval.py --rows 0 --cases evals/insights/holdout3.toml
	$(BIN)/python benchmarks/insights_eval.py --rows 0 --cases evals/insights/holdout4.toml
	$(BIN)/python benchmarks/insights_eval.py --rows 0 --cases evals/insights/holdout5.toml
	$(BIN)/python benchmarks/insights_eval.py --rows 0 --cases evals/insights/holdout6.toml
	$(BIN)/python benchmarks/insights_eval.py --rows 0 --cases evals/insights/holdout7.toml
	$(BIN)/python benchmarks/insights_eval.py --rows 0 --cases evals/insights/holdout8.toml
	$(BIN)/python benchmarks/insights_eval.py --rows 0 --cases evals/insights/holdout9.toml
	$(BIN)/python benchmarks/insights_eval.py --rows 0 --cases evals/insights/holdout10.toml
	$(BIN)/python benchmarks/insights_eval.py --rows 0 --cases evals/insights/holdout11.toml
	$(BIN)/python benchmarks/insights_eval.py --rows 0 --cases evals/insights/holdout12.toml

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
