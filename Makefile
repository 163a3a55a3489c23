# The two commands of the README: `make demo` and `make test`. Each creates .venv when missing and
# installs what it needs from PyPI; nothing else is downloaded at run time.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck k8s-binaries venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(STAMP)
	$(PY) -m pixelmesh.cli demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# The real control plane (etcd, kube-apiserver, kube-controller-manager) built from the pinned Go
# modules into ~/.cache/pixelmesh/k8s/<version>/; a no-op when the cached binaries are current.
k8s-binaries: $(STAMP)
	$(PY) -m e2e.cluster build

test: lint typecheck k8s-binaries
	$(VENV)/bin/pytest

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
