"""`autoscaling.engine: keda`: a ScaledObject with a nats-jetstream trigger, only where KEDA is installed."""

from __future__ import annotations

from typing import Any

import pytest

from pixelmesh.api import streams
from pixelmesh.api.messages import PipelineRef
from pixelmesh.api.resources import ImagePipelineSpec, RegionPoolSpec
from pixelmesh.operator import names
from pixelmesh.operator.builders.children import ChildOptions, build_children
from pixelmesh.operator.builders.hashing import spec_hash_of
from pixelmesh.operator.builders.pipeline_file import pipeline_revision
from pixelmesh.operator.builders.scaled_object import build_scaled_object, monitoring_endpoint
from pixelmesh.operator.target import RegionPlacement, WorkerTarget

REF = PipelineRef(namespace="media", name="thumbnails")
KEDA: dict[str, Any] = {
    "engine": "keda",
    "minReplicas": 0,
    "scaleToZero": True,
    "maxReplicas": 40,
    "targetBacklogPerReplica": 25,
    "scaleDownDelay": "3m",
    "idleAfter": "90s",
}


def target(autoscaling: dict[str, Any], placement: RegionPlacement | None = None) -> WorkerTarget:
    spec = ImagePipelineSpec.model_validate({"variants": [{"name": "v"}], "autoscaling": autoscaling})
    placement = placement or RegionPlacement(
        region="eu-west", pool="eu-west", weight=100, nats_urls=("nats://nats.eu-west.svc:4222",)
    )
    return WorkerTarget(REF, "uid-1", spec, pipeline_revision(REF, spec.pipeline(), 1), placement)


def trigger(obj: dict[str, Any]) -> dict[str, str]:
    (only,) = obj["spec"]["triggers"]
    assert only["type"] == "nats-jetstream"
    return dict(only["metadata"])


def test_the_trigger_reads_the_pipelines_own_stream_and_consumer_against_the_backlog_target() -> None:
    scaled = build_scaled_object(target(KEDA))
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["metadata"]["name"] == target(KEDA).names.workers
    assert scaled["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": target(KEDA).names.workers,
    }
    assert trigger(scaled) == {
        "natsServerMonitoringEndpoint": "nats.eu-west.svc:8222",
        "account": "$G",
        "stream": streams.job_stream(REF, "eu-west"),
        "consumer": streams.worker_consumer(REF),
        "lagThreshold": "25",
        "activationLagThreshold": "0",
    }


def test_bounds_and_windows_come_from_the_spec() -> None:
    spec = build_scaled_object(target(KEDA))["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (0, 40)
    assert spec["cooldownPeriod"] == 90, "KEDA's wait before going to zero is idleAfter"
    behaviour = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behaviour["scaleDown"]["stabilizationWindowSeconds"] == 180
    assert spec["pollingInterval"] == 5


def test_without_scale_to_zero_keda_keeps_one_and_the_pool_caps_the_maximum() -> None:
    pool = RegionPoolSpec.model_validate(
        {
            "region": "eu-west",
            "nats": {
                "urls": ["nats://n:4222"],
                "monitoringEndpoint": "nats-mon.eu-west:8222",
                "account": "APP",
            },
            "capacity": {"maxWorkers": 12},
        }
    )
    placed = RegionPlacement.from_pool("eu-west", pool, 100)
    scaled = build_scaled_object(target({**KEDA, "minReplicas": 1, "scaleToZero": False}, placed))
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (1, 12)
    assert trigger(scaled)["natsServerMonitoringEndpoint"] == "nats-mon.eu-west:8222"
    assert trigger(scaled)["account"] == "APP"


def test_the_monitoring_endpoint_defaults_to_the_first_urls_host() -> None:
    placement = RegionPlacement(
        region="r", pool="", weight=1, nats_urls=("tls://10.0.0.7:4222", "nats://x:4222")
    )
    assert monitoring_endpoint(placement) == "10.0.0.7:8222"


@pytest.mark.parametrize(
    ("engine", "crd", "expected"),
    [("keda", True, True), ("keda", False, False), ("builtin", True, False)],
)
def test_a_scaledobject_only_for_keda_pipelines_where_its_crd_exists(
    engine: str, crd: bool, expected: bool
) -> None:
    children = build_children(target({**KEDA, "engine": engine}), ChildOptions(scaled_object=crd))
    kinds = [c["kind"] for c in children]
    assert ("ScaledObject" in kinds) is expected
    if expected:
        assert kinds.index("ScaledObject") > kinds.index("Deployment"), "after the Deployment it scales"


def test_the_scaledobject_is_deterministic_and_carries_the_childrens_labels() -> None:
    first, second = build_scaled_object(target(KEDA)), build_scaled_object(target(KEDA))
    assert first == second
    assert spec_hash_of(first)
    assert first["metadata"]["labels"][names.LABEL_PIPELINE] == "thumbnails"
    assert first["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    changed = build_scaled_object(target({**KEDA, "targetBacklogPerReplica": 50}))
    assert spec_hash_of(changed) != spec_hash_of(first)
