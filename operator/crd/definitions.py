"""The CustomResourceDefinitions of ImagePipeline and RegionPool, built from the API models.

Pure: `build_crds()` returns the CRD objects as dicts, the same on every call, so the checked-in
YAML can be compared with a fresh build. Printer columns show what a platform team scans for in
`kubectl get ipl`: phase, ready workers, backlog, regions, age (and with `-o wide` the desired
workers and the state of a traffic shift).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from pixelmesh.api.resources import ImagePipelineSpec, ImagePipelineStatus, RegionPoolSpec, RegionPoolStatus
from pixelmesh.operator import names
from pixelmesh.operator.crd.rules import rules_by_definition
from pixelmesh.operator.crd.structural import Schema, to_structural

CRD = dict[str, Any]


def _column(name: str, type_: str, path: str, description: str, *, priority: int = 0) -> Schema:
    column: Schema = {"name": name, "type": type_, "jsonPath": path, "description": description}
    if priority:
        column["priority"] = priority
    return column


def _age() -> Schema:
    return _column("Age", "date", ".metadata.creationTimestamp", "Time since the object was created.")


def _model_schema(model: type[BaseModel]) -> Schema:
    return to_structural(model.model_json_schema(by_alias=True, mode="validation"), rules_by_definition())


def object_schema(spec: type[BaseModel], status: type[BaseModel], description: str) -> Schema:
    """The openAPIV3Schema of a resource: apiVersion, kind, metadata, spec and status."""
    return {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {
                "type": "string",
                "description": "The versioned schema of this representation of the object.",
            },
            "kind": {"type": "string", "description": "The REST resource this object represents."},
            "metadata": {"type": "object"},
            "spec": _model_schema(spec),
            "status": _model_schema(status),
        },
    }


def _crd(
    *,
    kind: str,
    plural: str,
    singular: str,
    short_names: tuple[str, ...],
    scope: str,
    schema: Schema,
    columns: list[Schema],
) -> CRD:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{names.GROUP}",
            "labels": {names.LABEL_PART_OF: names.PART_OF},
        },
        "spec": {
            "group": names.GROUP,
            "scope": scope,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": singular,
                "shortNames": list(short_names),
                "categories": [names.CATEGORY],
            },
            "versions": [
                {
                    "name": names.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def pipeline_crd() -> CRD:
    """The ImagePipeline CRD (namespaced)."""
    return _crd(
        kind=names.PIPELINE_KIND,
        plural=names.PIPELINE_PLURAL,
        singular=names.PIPELINE_SINGULAR,
        short_names=names.PIPELINE_SHORT_NAMES,
        scope="Namespaced",
        schema=object_schema(
            ImagePipelineSpec,
            ImagePipelineStatus,
            "An image pipeline: what to do to each source image (limits, shared steps, named variants "
            "with their output formats) and where and how to run it (regions, autoscaling, workers).",
        ),
        columns=[
            _column("Phase", "string", ".status.phase", "Where the pipeline stands as a whole."),
            _column("Ready", "integer", ".status.readyReplicas", "Ready workers across regions."),
            _column(
                "Desired", "integer", ".status.desiredReplicas", "Desired workers across regions.", priority=1
            ),
            _column("Backlog", "integer", ".status.backlog", "Jobs pending across regions."),
            _column("Regions", "string", ".status.regionSummary", "Regions and their effective weights."),
            _column(
                "Traffic",
                "string",
                ".status.traffic.state",
                "Where the rollout of the region weights stands (Steady, Shifting, RolledBack...).",
                priority=1,
            ),
            _age(),
        ],
    )


def pool_crd() -> CRD:
    """The RegionPool CRD (cluster-scoped)."""
    return _crd(
        kind=names.POOL_KIND,
        plural=names.POOL_PLURAL,
        singular=names.POOL_SINGULAR,
        short_names=names.POOL_SHORT_NAMES,
        scope="Cluster",
        schema=object_schema(
            RegionPoolSpec,
            RegionPoolStatus,
            "A region: a Kubernetes cluster and a NATS cluster with JetStream that ImagePipelines run in.",
        ),
        columns=[
            _column("Region", "string", ".spec.region", "The region's name."),
            _column("Phase", "string", ".status.phase", "The region's health."),
            _column("Weight", "integer", ".spec.weight", "The region's default share of traffic."),
            _column(
                "RTT-ms", "number", ".status.roundTripMilliseconds", "NATS round trip of the last probe."
            ),
            _column("Workers", "integer", ".status.activeWorkers", "Ready workers of all pipelines here."),
            _age(),
        ],
    )


def build_crds() -> list[CRD]:
    """Every CRD of the API, in a stable order."""
    return [pipeline_crd(), pool_crd()]
