"""The pure layers of the operator import neither kopf, nor the Kubernetes client, nor nats."""

from __future__ import annotations

import subprocess
import sys

PURE = (
    "pixelmesh.operator.builders.children",
    "pixelmesh.operator.builders.streams",
    "pixelmesh.operator.crd.definitions",
    "pixelmesh.operator.drift",
    "pixelmesh.operator.names",
    "pixelmesh.operator.placement",
    "pixelmesh.operator.reconcile",
    "pixelmesh.operator.scaling",
    "pixelmesh.operator.status",
)


def test_builders_status_and_the_core_load_without_kopf_kubernetes_or_nats() -> None:
    probe = (
        "import importlib, sys\n"
        f"for name in {PURE!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in ('kopf', 'kubernetes', 'nats') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
