# The two commands of the README: `make demo` and `make test`. Each creates .venv when missing and
# installs what it needs from PyPI; nothing else is downloaded at run time.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck k8s-binaries tools generate bench bench-quick venv clean

venv: $(STAMP)

# requirements.lock pins the runtime closure the image installs; the dev venv is held to it.
# pip runs as its console script: `python -m` puts this folder first on sys.path, where the
# stdlib's `operator` must not meet our `operator/` folder before the venv is set up.
$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

demo: $(STAMP)
	$(PY) -m pixelmesh.cli demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/hadolint Dockerfile

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# The real control plane (etcd, kube-apiserver, kube-controller-manager) built from the pinned Go
# modules into ~/.cache/pixelmesh/k8s/<version>/; a no-op when the cached binaries are current.
k8s-binaries: $(STAMP)
	$(PY) -m e2e.cluster build

# promtool (for the alert rule tests) comes from Debian's prometheus package; no PyPI package ships it.
tools:
	command -v promtool >/dev/null || (apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus)

# Regenerate what is generated from code: the CRDs, the dashboards, the alert rules, the chart's RBAC.
generate: $(STAMP)
	$(PY) -m pixelmesh.operator.crdgen
	$(PY) -m pixelmesh.observability

test: lint typecheck k8s-binaries tools
	$(VENV)/bin/pytest

# Throughput, CPU and memory side by side: raw libvips, the PixelMesh worker and gateway, Pillow and
# thumbor (in its own venv under ~/.cache/pixelmesh/bench). Results in bench/results/latest.json.
bench: $(STAMP)
	$(PY) -m bench

bench-quick: $(STAMP)
	$(PY) -m bench --quick

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
