"""The CRDs in crds/ are generated from the API models, structural, and say what they should."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pixelmesh.api.pipeline import Step
from pixelmesh.operator import crdgen, names
from pixelmesh.operator.crd.definitions import build_crds, pipeline_crd, pool_crd

ROOT = Path(__file__).resolve().parents[2]


def schema_of(crd: dict[str, Any]) -> dict[str, Any]:
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its path."""
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from nodes(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from nodes(schema["additionalProperties"], f"{path}{{}}")


def node_at(schema: dict[str, Any], dotted: str) -> dict[str, Any]:
    node = schema
    for part in dotted.strip(".").split("."):
        node = node["properties"][part[:-2]]["items"] if part.endswith("[]") else node["properties"][part]
    return node


def test_the_checked_in_crds_are_what_the_models_generate() -> None:
    assert crdgen.stale_files(ROOT / "crds") == [], "run python -m pixelmesh.operator.crdgen"


def test_crdgen_check_fails_on_a_stale_file_and_writes_it_fresh(tmp_path: Path) -> None:
    assert crdgen.main(["--output-dir", str(tmp_path)]) == 0
    assert crdgen.main(["--output-dir", str(tmp_path), "--check"]) == 0
    target = tmp_path / "imagepipelines.pixelmesh.io.yaml"
    target.write_text(target.read_text().replace("minReplicas", "minimumReplicas"))
    assert crdgen.main(["--output-dir", str(tmp_path), "--check"]) == 1


@pytest.mark.parametrize("crd", build_crds(), ids=lambda c: c["metadata"]["name"])
def test_every_node_is_structural(crd: dict[str, Any]) -> None:
    """Every node has a type, and nothing a structural schema forbids is left over from JSON Schema."""
    for path, node in nodes(schema_of(crd)):
        assert "type" in node or node.get("x-kubernetes-int-or-string"), f"{path} has no type"
        assert not {"$ref", "$defs", "title", "oneOf", "allOf", "const", "uniqueItems"} & set(node), path
        assert node.get("additionalProperties") is not False, path
        assert node.get("default", "absent") is not None, path
        if "properties" in node:
            assert "additionalProperties" not in node, path
        if node.get("x-kubernetes-int-or-string"):
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
        elif "anyOf" in node:
            pytest.fail(f"{path}: a union other than int-or-string")
        if isinstance(node.get("exclusiveMinimum"), bool):
            assert "minimum" in node, path


@pytest.mark.parametrize("crd", build_crds(), ids=lambda c: c["metadata"]["name"])
def test_names_subresources_and_printer_columns(crd: dict[str, Any]) -> None:
    spec = crd["spec"]
    assert spec["group"] == names.GROUP
    assert spec["names"]["categories"] == [names.CATEGORY]
    version = spec["versions"][0]
    assert version["name"] == names.VERSION
    assert version["served"]
    assert version["storage"]
    assert version["subresources"] == {"status": {}}
    schema = schema_of(crd)
    for column in version["additionalPrinterColumns"]:
        path = column["jsonPath"]
        if path == ".metadata.creationTimestamp":
            continue
        node = node_at(schema, path)
        assert node["type"] == column["type"], f"column {column['name']} points at a {node['type']}"


def test_short_names_scopes_and_the_columns_a_platform_team_scans_for() -> None:
    pipeline, pool = pipeline_crd(), pool_crd()
    assert pipeline["spec"]["names"]["shortNames"] == ["ipl"]
    assert pool["spec"]["names"]["shortNames"] == ["rpool"]
    assert pipeline["spec"]["scope"] == "Namespaced"
    assert pool["spec"]["scope"] == "Cluster"
    columns = [c["name"] for c in pipeline["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert columns == ["Phase", "Ready", "Desired", "Backlog", "Regions", "Traffic", "Age"]


def test_field_docstrings_become_descriptions() -> None:
    schema = schema_of(pipeline_crd())
    assert node_at(schema, "spec.autoscaling.minReplicas")["description"].startswith(
        "Fewest workers per region"
    )
    assert node_at(schema, "spec.variants")["description"].startswith("The outputs made from each source")
    assert node_at(schema, "spec.variants[].name")["description"].startswith("Names the output")
    # A constrained type (HexColour) brings its pattern, never words that hide the field's own.
    background = node_at(schema, "spec.steps[].flatten.background")
    assert background["description"].startswith("The colour under transparent pixels")
    assert background["pattern"].startswith("^#")
    undescribed = [p for p, n in nodes(node_at(schema, "spec")) if p and "description" not in n]
    # Leaves of shared pipeline models without docstrings are tolerated; the API's own sections are not.
    own_sections = ("autoscaling", "worker", "retry", "queue", "outputs", "trafficShift", "regions")
    assert not [p for p in undescribed if p.split(".")[1].rstrip("[]") in own_sections and p.count(".") == 1]


def test_the_step_union_has_its_exactly_one_rule_wherever_a_step_appears() -> None:
    schema = schema_of(pipeline_crd())
    members = [info.alias or name for name, info in Step.model_fields.items()]
    for path in ("spec.steps", "spec.variants[].steps"):
        step = node_at(schema, path)["items"]
        (rule,) = step["x-kubernetes-validations"]
        assert all(f"has(self.{m})" in rule["rule"] for m in members)
        assert rule["rule"].endswith(".size() == 1")


def test_cel_rules_cover_replicas_variants_weights_and_the_pool_region() -> None:
    schema = schema_of(pipeline_crd())
    spec_rules = [r["rule"] for r in node_at(schema, "spec")["x-kubernetes-validations"]]
    assert any("exists_one(w, w.name == v.name)" in r for r in spec_rules)
    assert any("r.weight > 0" in r for r in spec_rules)
    autoscaling = [r["rule"] for r in node_at(schema, "spec.autoscaling")["x-kubernetes-validations"]]
    assert "self.minReplicas <= self.maxReplicas" in autoscaling
    assert node_at(schema, "spec.regions[].weight")["minimum"] == 0
    pool_rules = [r["rule"] for r in node_at(schema_of(pool_crd()), "spec")["x-kubernetes-validations"]]
    assert "self.region == oldSelf.region" in pool_rules


def test_quantities_are_int_or_string_and_conditions_a_map_keyed_by_type() -> None:
    schema = schema_of(pipeline_crd())
    quantity = node_at(schema, "spec.worker.resources.requests")["additionalProperties"]
    assert quantity["x-kubernetes-int-or-string"] is True
    assert re.fullmatch(quantity["pattern"], "1Gi")
    assert not re.fullmatch(quantity["pattern"], "1GB")
    conditions = node_at(schema, "status.conditions")
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]


def test_yaml_1_1_booleans_are_quoted_so_kubectl_reads_strings() -> None:
    """`required: [x, y]` must not reach the API server as `[x, true]`."""
    text = (ROOT / "crds" / "imagepipelines.pixelmesh.io.yaml").read_text()
    assert re.search(r"^\s*- y$", text, re.MULTILINE) is None
    assert re.search(r"^\s*y:$", text, re.MULTILINE) is None
    assert "- 'y'" in text
    required = [
        name
        for _, node in nodes(schema_of(yaml.safe_load(text.split("---\n", 1)[1])))
        for name in node.get("required", [])
    ]
    assert "y" in required
    assert all(isinstance(name, str) for name in required)


def test_descriptions_keep_paragraphs_and_lose_the_docstrings_line_breaks() -> None:
    """`kubectl explain` wraps text itself; a docstring's own line breaks would cut sentences."""
    schema = schema_of(pipeline_crd())
    durability = node_at(schema, "spec.durability")["description"]
    assert "\n" not in durability
    assert "a region's loss can lose the unmirrored tail" in durability
    thumbnail = node_at(schema, "spec.steps[].thumbnail")["description"]
    assert thumbnail.count("\n\n") == 1
    assert "\n\n\n" not in thumbnail
    text = (ROOT / "crds" / "imagepipelines.pixelmesh.io.yaml").read_text()
    assert "description: |-" in text
