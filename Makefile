# sageport developer tasks. Everything installs itself: `make test` on a fresh machine works.
SHELL := /bin/bash
CACHE ?= $(HOME)/.cache/sageport
UV_VERSION := 0.13.8
UV := $(CACHE)/uv-$(UV_VERSION)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
export UV_PYTHON_DOWNLOADS := never
export UV_CACHE_DIR := $(CACHE)/uv-cache

.PHONY: setup lock test test-unit test-integration lint manifests check-manifests bench demo \
        cluster-up cluster-down cluster-kubeconfig cluster-status clean

$(UV):
	python3 -m venv $(CACHE)/uv-$(UV_VERSION)
	$(CACHE)/uv-$(UV_VERSION)/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --all-extras --python python3.11
	touch $@

lock: | $(UV)   # after editing dependencies in pyproject.toml
	$(UV) lock --python python3.11

setup: $(VENV)/.installed

test: setup
	$(PY) -m pytest tests -q -p no:cacheprovider

test-unit: setup
	$(PY) -m pytest tests/unit -q

test-integration: setup
	$(PY) -m pytest tests/integration -q

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

manifests: setup
	$(PY) -m sageport.operator.crdgen

check-manifests: setup
	$(PY) -m sageport.operator.crdgen --check

bench: setup
	$(PY) -m bench

demo: setup
	$(PY) -m tests.cluster.demo

cluster-up: setup
	$(PY) -m tests.cluster up

cluster-down: setup
	$(PY) -m tests.cluster down

cluster-status: setup
	$(PY) -m tests.cluster status

cluster-kubeconfig: setup
	@$(PY) -m tests.cluster kubeconfig

clean:
	rm -rf $(VENV)
