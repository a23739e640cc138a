# sageport developer tasks. Everything installs itself: `make test` on a fresh machine works.
SHELL := /bin/bash
CACHE ?= $(HOME)/.cache/sageport
UV_VERSION := 0.13.8
UV := $(CACHE)/uv-$(UV_VERSION)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
export UV_PYTHON_DOWNLOADS := never
export UV_CACHE_DIR := $(CACHE)/uv-cache

.PHONY: setup host-deps lock test test-unit test-integration test-e2e lint manifests check-manifests bench demo \
        up down status cluster-up cluster-down cluster-kubeconfig cluster-status clean

$(UV):
	python3 -m venv $(CACHE)/uv-$(UV_VERSION)
	$(CACHE)/uv-$(UV_VERSION)/bin/pip install --quiet uv==$(UV_VERSION) >&2

$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --all-extras --all-groups --python python3.11 >&2
	touch $@

lock: | $(UV)   # after editing dependencies in pyproject.toml
	$(UV) lock --python python3.11

setup: $(VENV)/.installed

# Debian packages of the real node and the image builder (containerd, runc, CNI plugins,
# iptables, conntrack, debootstrap): installed with apt-get when missing.
host-deps: setup
	$(PY) -m sageport_dev.hostdeps

test: setup host-deps
	$(PY) -m pytest tests -q -p no:cacheprovider

test-unit: setup
	$(PY) -m pytest tests/unit -q

test-integration: setup
	$(PY) -m pytest tests/integration -q

test-e2e: setup host-deps
	$(PY) -m pytest tests/e2e -q

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

demo: setup host-deps
	$(PY) -m sageport_dev demo

# The whole local stack, left running. Its last lines are `export` lines (progress goes to
# stderr), so `eval "$(make -s up)"` prepares a shell for plain boto3 and kubectl.
# PROMETHEUS=1: with Prometheus scraping the gateway, the alarm source of Endpoint updates
# (`python -m sageport_dev alarm-rules FILE` loads alerting rules into it).
up: setup
	@$(PY) -m sageport_dev.hostdeps >&2
	@$(PY) -m sageport_dev up $(if $(filter 1 true yes,$(PROMETHEUS)),--prometheus)

down: setup
	@$(PY) -m sageport_dev down

status: setup
	@$(PY) -m sageport_dev status

cluster-up: setup
	$(PY) -m sageport_dev cluster up

cluster-down: setup
	$(PY) -m sageport_dev cluster down

cluster-status: setup
	$(PY) -m sageport_dev cluster status

cluster-kubeconfig: setup
	@$(PY) -m sageport_dev cluster kubeconfig

clean:
	rm -rf $(VENV)
