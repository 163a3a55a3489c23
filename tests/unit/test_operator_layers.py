"""The pure layers of the operator import neither kopf, nor the Kubernetes client, nor nats.

import-linter checks the imports each module names; this checks what loading the modules really
pulls in (package `__init__`s, imports of imports), for the same modules its contract lists.
"""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

CONTRACT = "importlinter:contract:operator-pure-layers"


def contract_modules(key: str) -> list[str]:
    config = configparser.ConfigParser()
    config.read(Path(__file__).resolve().parents[2] / ".importlinter")
    return config[CONTRACT][key].split()


def test_builders_status_and_the_core_load_without_kopf_kubernetes_or_nats() -> None:
    pure, forbidden = contract_modules("source_modules"), contract_modules("forbidden_modules")
    assert "pixelmesh.operator.reconcile" in pure
    assert forbidden == ["kopf", "kubernetes", "nats"]
    probe = (
        "import importlib, pkgutil, sys\n"
        f"for name in {pure!r}:\n"
        "    module = importlib.import_module(name)\n"
        "    for sub in pkgutil.walk_packages(getattr(module, '__path__', []), name + '.'):\n"
        "        importlib.import_module(sub.name)\n"
        f"print(sorted(m for m in {forbidden!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
