# babylm-pipeline: `make demo` and `make test` are the quick start; see README.md.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build by default (small, and what CI uses); GPU users: make install TORCH="torch" (or keep theirs).
TORCH ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: install test test-slurm test-export-compat lint format bench shards demo clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first: a plain `torch` requirement with none installed would pull a multi-GB CUDA build.
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev,bench]"
	touch $@

test: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

# The Slurm scripts against a real one-node Slurm (apt-installs slurm-wlm and munge if missing;
# root); the daemons it starts are stopped again. See README, "Slurm".
test-slurm: install
	tests/slurm/cluster.sh $(PY) -m pytest -q -m slurm tests/slurm $(PYTEST_ARGS)

# An exported folder and its revisions in clean venvs without babylm-pipeline: transformers 4.51.3
# (the 2025 evaluation's pin), 4.56.2 and the newest 5.x (EXPORT_COMPAT_TRANSFORMERS overrides);
# venvs and wheels are cached under build/export-compat.
test-export-compat: install
	tests/export_compat/run.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

shards: install
	scripts/make_shards.sh

demo: install
	scripts/demo.sh

# What the benchmarks measure against (datasets, litdata) is in the `bench` extra, which install takes.
bench: install
	@set -e; for f in bench/bench_*.py; do echo "== $$f"; $(PY) $$f; done

clean:
	rm -rf .demo build dist *.egg-info .pytest_cache .ruff_cache
