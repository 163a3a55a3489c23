"""Rendering the Helm chart with the real Helm engine (helm-python-sdk), for the chart tests."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "charts" / "pixelmesh"
CI_VALUES = sorted((CHART_DIR / "ci").glob("*-values.yaml"))
RELEASE = "pm"
NAMESPACE = "pixelmesh-system"
KUBE_VERSION = "v1.33.0"

Obj = dict[str, Any]
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.cache
def chart() -> helm_python.Chart:
    # files/crds is a link to the repository's crds/; Helm says so at INFO level on every load.
    helm_python.disable_logging()
    return helm_python.Chart.load(CHART_DIR)


def values_file(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text()) or {}
    assert isinstance(loaded, dict)
    return loaded


def render_templates(values: dict[str, Any] | None = None, namespace: str = NAMESPACE) -> dict[str, str]:
    """Template path -> rendered text, as `helm template` would produce."""
    return chart().render(values or {}, name=RELEASE, namespace=namespace, is_install=True)


def render(values: dict[str, Any] | None = None, namespace: str = NAMESPACE) -> list[Obj]:
    """Every object the chart renders with `values` (NOTES.txt excluded). Shared: do not mutate."""
    return _render(json.dumps(values or {}, sort_keys=True), namespace)


@functools.cache
def _render(values_json: str, namespace: str) -> list[Obj]:
    objects: list[Obj] = []
    for path, text in sorted(render_templates(json.loads(values_json), namespace).items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(document for document in yaml.load_all(text, Loader=_LOADER) if document)
    return objects


def of_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind]


def named(objects: list[Obj], kind: str, suffix: str) -> Obj:
    """The one object of `kind` whose name ends with `suffix`."""
    (found,) = [o for o in of_kind(objects, kind) if o["metadata"]["name"].endswith(suffix)]
    return found


def pod_templates(objects: list[Obj]) -> Iterator[tuple[str, Obj]]:
    """(workload name, pod template) of every workload."""
    for obj in objects:
        if obj["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            yield obj["metadata"]["name"], obj["spec"]["template"]
