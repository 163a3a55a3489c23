"""values.yaml is the chart's documentation and values.schema.json its contract: both stay complete."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from tests.unit.chart_rendering import CHART_DIR, CI_VALUES, chart, render, values_file

VALUES = CHART_DIR / "values.yaml"
SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text())
# Values Helm itself may pass to any chart; the schema allows it without the chart defining it.
HELM_RESERVED = {"global"}


def documented_values(path: Path) -> Iterator[tuple[str, bool]]:
    """(dotted key, has a `# --` comment) for every value: leaves, lists and empty maps."""
    lines = path.read_text().splitlines()
    root = yaml.compose(path.read_text())
    assert isinstance(root, yaml.MappingNode)

    def documented(line_index: int) -> bool:
        index = line_index - 1
        while index >= 0:
            text = lines[index].strip()
            if text.startswith("# --") or text.startswith("- # --"):
                return True
            if not text.startswith("#"):
                return False
            index -= 1
        return False

    def walk(node: yaml.MappingNode, prefix: str) -> Iterator[tuple[str, bool]]:
        for key, value in node.value:
            dotted = f"{prefix}{key.value}"
            line = key.start_mark.line
            own_line = lines[line].strip()
            is_value = not isinstance(value, yaml.MappingNode) or not value.value
            if is_value:
                yield dotted, documented(line) or own_line.startswith("- # --")
            if isinstance(value, yaml.MappingNode):
                yield from walk(value, dotted + ".")
            elif isinstance(value, yaml.SequenceNode):
                for item in value.value:
                    if isinstance(item, yaml.MappingNode):
                        yield from walk(item, dotted + "[].")

    yield from walk(root, "")


def test_every_value_has_a_helm_docs_comment() -> None:
    values = list(documented_values(VALUES))
    assert len(values) > 50
    undocumented = [key for key, ok in values if not ok]
    assert undocumented == []


def schema_keys(schema: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, sub in schema.get("properties", {}).items():
        dotted = f"{prefix}{key}"
        yield dotted
        yield from schema_keys(sub, dotted + ".")
        if "items" in sub and isinstance(sub["items"], dict):
            yield from schema_keys(sub["items"], dotted + "[].")


def value_keys(values: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(values, dict):
        for key, sub in values.items():
            dotted = f"{prefix}{key}"
            yield dotted
            yield from value_keys(sub, dotted + ".")
    elif isinstance(values, list):
        for item in values:
            yield from value_keys(item, prefix.rstrip(".") + "[].")


def free_form(schema: dict[str, Any], dotted: str) -> bool:
    """Whether `dotted` lies under an object the schema leaves open (labels, resources, contexts)."""
    node = schema
    for part in dotted.split("."):
        name = part.removesuffix("[]")
        properties = node.get("properties")
        if properties is None:
            return True
        if name not in properties:
            return False
        node = properties[name]
        if part.endswith("[]"):
            node = node.get("items", {})
    return False


def under_empty_list(values: dict[str, Any], dotted: str) -> bool:
    """Whether `dotted` describes items of a list that is empty by default (nothing to show)."""
    if "[]" not in dotted:
        return False
    node: Any = values
    for part in dotted.split("[]", 1)[0].split("."):
        node = node[part]
    return bool(node == [])


def test_the_schema_and_values_yaml_name_the_same_keys() -> None:
    defaults = yaml.safe_load(VALUES.read_text())
    in_values = set(value_keys(defaults))
    in_schema = set(schema_keys(SCHEMA)) - HELM_RESERVED
    unknown_to_schema = sorted(k for k in in_values - in_schema if not free_form(SCHEMA, k))
    missing_from_values = sorted(k for k in in_schema - in_values if not under_empty_list(defaults, k))
    assert unknown_to_schema == [], "values.yaml has keys the schema does not describe"
    assert missing_from_values == [], "the schema describes keys values.yaml does not show"


def test_the_schema_closes_every_object_it_describes() -> None:
    """Unknown keys (typos) are errors wherever the chart defines the keys."""

    def open_objects(node: dict[str, Any], path: str) -> Iterator[str]:
        if "properties" in node and node.get("additionalProperties") is not False:
            yield path or "<root>"
        for key, sub in node.get("properties", {}).items():
            yield from open_objects(sub, f"{path}.{key}".lstrip("."))
        if isinstance(node.get("items"), dict):
            yield from open_objects(node["items"], path + "[]")

    open_ones = set(open_objects(SCHEMA, "")) - {"gateway.pipelines[]", "gateway.pipelines[].metadata"}
    assert open_ones == set()


@pytest.mark.parametrize("path", [None, *CI_VALUES], ids=lambda p: "defaults" if p is None else p.name)
def test_the_defaults_and_every_ci_values_file_satisfy_the_schema(path: Path | None) -> None:
    values = {} if path is None else values_file(path)
    chart().validate_schema(chart().merge_values(values))


BAD_VALUES = [
    ({"image": {"tag": 1}}, "/image/tag"),
    ({"imag": {"tag": "1.0"}}, "imag"),
    ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    ({"image": {"digest": "latest"}}, "/image/digest"),
    ({"region": "EU West"}, "/region"),
    ({"nats": {"urls": []}}, "/nats/urls"),
    ({"nats": {"urls": ["http://nats:4222"]}}, "/nats/urls/0"),
    ({"operator": {"clusterWide": "yes"}}, "/operator/clusterWide"),
    ({"operator": {"watchNamespaces": ["Media_Team"]}}, "/operator/watchNamespaces/0"),
    ({"operator": {"metricsPort": 70000}}, "/operator/metricsPort"),
    ({"operator": {"resyncSeconds": 0}}, "/operator/resyncSeconds"),
    ({"gateway": {"logLevel": "verbose"}}, "/gateway/logLevel"),
    ({"gateway": {"replicas": "two"}}, "/gateway/replicas"),
    ({"gateway": {"ingress": {"enabeld": True}}}, "/gateway/ingress"),
    ({"gateway": {"autoscaling": {"targetCPUUtilizationPercentage": 150}}}, "targetCPUUtilizationPercentage"),
    ({"gateway": {"service": {"type": "ExternalName"}}}, "/gateway/service/type"),
    ({"gateway": {"pipelines": [{"kind": "Deployment"}]}}, "/gateway/pipelines/0"),
    ({"monitoring": {"serviceMonitor": {"interval": "often"}}}, "/monitoring/serviceMonitor/interval"),
    ({"monitoring": {"prometheusRule": {"runbookBaseUrl": "docs/runbooks.md"}}}, "runbookBaseUrl"),
]


@pytest.mark.parametrize(("values", "where"), BAD_VALUES, ids=[w for _, w in BAD_VALUES])
def test_the_schema_refuses_bad_values_naming_where(values: dict[str, Any], where: str) -> None:
    with pytest.raises(helm_python.HelmValuesError) as refused:
        chart().validate_schema(chart().merge_values(values))
    assert where in str(refused.value)
    with pytest.raises(helm_python.HelmValuesError):
        render(values)
