"""The builders render what a platform team expects, deterministically, without a server."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from pixelmesh.api.messages import PipelineRef, PipelineRevision
from pixelmesh.api.resources import ClusterRef, ImagePipelineSpec, Placement, SecretKeyRef, Toleration
from pixelmesh.operator import names
from pixelmesh.operator.builders.children import ChildOptions, build_children
from pixelmesh.operator.builders.config_map import build_pipeline_config_map
from pixelmesh.operator.builders.disruption import build_disruption_budget
from pixelmesh.operator.builders.hashing import content_hash, spec_hash_of
from pixelmesh.operator.builders.monitoring import build_service_monitor
from pixelmesh.operator.builders.pipeline_file import (
    pipeline_generation,
    pipeline_revision,
    pipeline_spec_hash,
)
from pixelmesh.operator.builders.service import build_metrics_service
from pixelmesh.operator.builders.streams import pipeline_stream_settings
from pixelmesh.operator.builders.workers import build_worker_deployment, termination_grace_seconds
from pixelmesh.operator.target import RegionPlacement, WorkerDefaults, WorkerTarget
from pixelmesh.worker.config import WorkerConfig

REF = PipelineRef(namespace="media", name="thumbnails")
BASE_SPEC: dict[str, Any] = {
    "variants": [
        {"name": "thumb", "steps": [{"thumbnail": {"width": 256}}], "format": {"type": "webp"}},
        {"name": "preview", "format": {"type": "jpeg", "quality": 82}},
    ],
    "worker": {"concurrency": 3, "drainTimeout": "45s", "resources": {"requests": {"cpu": "500m"}}},
}


def target(spec: dict[str, Any] | None = None, **placement: Any) -> WorkerTarget:
    parsed = ImagePipelineSpec.model_validate(spec or BASE_SPEC)
    region = RegionPlacement(
        region=placement.pop("region", "eu-west"),
        pool=placement.pop("pool", "eu-west"),
        weight=100,
        nats_urls=("nats://a:4222", "nats://b:4222"),
        **placement,
    )
    revision = pipeline_revision(REF, parsed.pipeline(), 3)
    return WorkerTarget(REF, "uid-1", parsed, revision, region, WorkerDefaults(image="example/pm:1"))


def pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]


def test_the_deployment_never_sets_replicas() -> None:
    deployment = build_worker_deployment(target())
    assert "replicas" not in deployment["spec"]


def test_worker_pods_meet_the_restricted_pod_security_standard() -> None:
    pod = pod_spec(build_worker_deployment(target()))
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]], "libvips needs a writable /tmp under a read-only root"


def test_probes_resources_spread_and_drain_time_come_from_the_spec() -> None:
    deployment = build_worker_deployment(target())
    pod = pod_spec(deployment)
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"] == {"requests": {"cpu": "500m"}}
    assert container["image"] == "example/pm:1"
    assert pod["terminationGracePeriodSeconds"] == termination_grace_seconds(target()) > 45
    zone = pod["topologySpreadConstraints"][0]
    assert zone["topologyKey"] == "topology.kubernetes.io/zone"
    assert zone["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


def test_the_worker_environment_is_the_workers_own_configuration() -> None:
    """Every variable the Deployment sets names a field of the worker's config, and parses there."""
    env = pod_spec(build_worker_deployment(target()))["containers"][0]["env"]
    fields = {f.name for f in dataclasses.fields(WorkerConfig)}
    for variable in env:
        assert variable["name"].startswith("PIXELMESH_")
        assert variable["name"].removeprefix("PIXELMESH_").lower() in fields, variable["name"]
    values = {v["name"]: v["value"] for v in env if "value" in v}
    config = WorkerConfig.from_env({**values, names.ENV_WORKER_NAME: "pod-1"})
    assert config.nats_urls == ("nats://a:4222", "nats://b:4222")
    assert config.region == "eu-west"
    assert config.concurrency == 3
    assert config.drain_grace_seconds == 45.0
    assert str(config.pipeline_file) == f"{names.PIPELINE_MOUNT_DIR}/{names.PIPELINE_FILE_KEY}"


def test_the_config_map_holds_a_pipeline_file_the_worker_reads() -> None:
    config_map = build_pipeline_config_map(target())
    revision = PipelineRevision.model_validate(json.loads(config_map["data"][names.PIPELINE_FILE_KEY]))
    assert revision.ref == REF
    assert revision.generation == 3
    assert [v.name for v in revision.spec.variants] == ["thumb", "preview"]
    volume = next(v for v in pod_spec(build_worker_deployment(target()))["volumes"] if "configMap" in v)
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]


def pod_template_hash(spec: dict[str, Any]) -> str:
    return build_worker_deployment(target(spec))["spec"]["template"]["metadata"]["annotations"][
        names.PIPELINE_HASH
    ]


def test_changing_a_variant_changes_the_pod_template_hash() -> None:
    changed = json.loads(json.dumps(BASE_SPEC))
    changed["variants"][0]["format"]["quality"] = 60
    assert pod_template_hash(changed) != pod_template_hash(BASE_SPEC)


def test_changing_only_autoscaling_leaves_the_pod_template_alone() -> None:
    changed = {**BASE_SPEC, "autoscaling": {"minReplicas": 4, "maxReplicas": 40}}
    assert pod_template_hash(changed) == pod_template_hash(BASE_SPEC)
    before = build_worker_deployment(target())
    after = build_worker_deployment(target(changed))
    assert before == after, "nothing in the Deployment depends on the replica bounds"


def test_the_pipeline_generation_only_moves_when_the_pipeline_part_changes() -> None:
    spec = ImagePipelineSpec.model_validate(BASE_SPEC).pipeline()
    same = pipeline_generation(spec, 9, last_hash=pipeline_spec_hash(spec), last_generation=4)
    assert same == 4
    assert pipeline_generation(spec, 9, last_hash="something-else", last_generation=4) == 9
    assert pipeline_generation(spec, 9, last_hash=None, last_generation=None) == 9


def test_builders_are_deterministic_and_stamp_their_own_hash() -> None:
    first, second = build_children(target(), ChildOptions()), build_children(target(), ChildOptions())
    assert first == second
    for child in first:
        unstamped = json.loads(json.dumps(child))
        del unstamped["metadata"]["annotations"][names.SPEC_HASH]
        assert spec_hash_of(child) == content_hash(unstamped)


def test_children_share_labels_and_the_owner_reference() -> None:
    for child in build_children(target(), ChildOptions(service_monitor=True)):
        metadata = child["metadata"]
        assert metadata["namespace"] == "media"
        assert metadata["labels"][names.LABEL_MANAGED_BY] == names.MANAGED_BY
        assert metadata["labels"][names.LABEL_REGION] == "eu-west"
        assert metadata["labels"][names.LABEL_POOL] == "eu-west"
        (owner,) = metadata["ownerReferences"]
        assert owner["uid"] == "uid-1"
        assert owner["kind"] == "ImagePipeline"
        assert owner["controller"] is True


def test_children_in_another_cluster_carry_the_owner_annotation_but_no_owner_reference() -> None:
    remote = target(
        cluster=ClusterRef(kubeconfig_secret=SecretKeyRef(name="k", namespace="pm", key="config"))
    )
    for child in build_children(remote, ChildOptions()):
        assert "ownerReferences" not in child["metadata"]
        assert child["metadata"]["annotations"][names.OWNER] == "media/thumbnails"


def test_a_servicemonitor_only_when_the_cluster_has_the_crd() -> None:
    kinds = [c["kind"] for c in build_children(target(), ChildOptions())]
    assert kinds == ["ConfigMap", "Deployment", "Service", "PodDisruptionBudget"]
    with_monitor = [c["kind"] for c in build_children(target(), ChildOptions(service_monitor=True))]
    assert with_monitor[-1] == "ServiceMonitor"
    monitor = build_service_monitor(target())
    assert monitor["spec"]["endpoints"][0]["port"] == names.METRICS_PORT_NAME


def test_the_service_and_budget_select_exactly_the_workers_pods() -> None:
    deployment = build_worker_deployment(target())
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert build_metrics_service(target())["spec"]["selector"] == selector
    assert build_disruption_budget(target())["spec"]["selector"]["matchLabels"] == selector
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    other_region = build_worker_deployment(target(region="us-east", pool="us-east"))
    assert other_region["spec"]["selector"]["matchLabels"] != selector


def test_nats_credentials_are_mounted_from_a_copied_secret() -> None:
    creds = SecretKeyRef(name="nats-creds", namespace="pixelmesh", key="user.creds")
    with_creds = target(nats_credentials=creds)
    children = build_children(with_creds, ChildOptions(nats_credentials=b"-----BEGIN NATS USER JWT-----"))
    secret = next(c for c in children if c["kind"] == "Secret")
    assert secret["metadata"]["namespace"] == "media"
    pod = pod_spec(next(c for c in children if c["kind"] == "Deployment"))
    volume = next(v for v in pod["volumes"] if "secret" in v)
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    env = {v["name"]: v.get("value") for v in pod["containers"][0]["env"]}
    assert env[names.ENV_NATS_CREDENTIALS].startswith(names.NATS_CREDENTIALS_MOUNT_DIR)


def test_placement_sets_node_selector_and_tolerations() -> None:
    placed = target(
        placement=Placement(
            node_selector={"pool": "images"},
            tolerations=[Toleration(key="dedicated", value="images", effect="NoSchedule")],
        )
    )
    pod = pod_spec(build_worker_deployment(placed))
    assert pod["nodeSelector"] == {"pool": "images"}
    assert pod["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "images", "effect": "NoSchedule"}
    ]
    assert "nodeSelector" not in pod_spec(build_worker_deployment(target()))


def test_stream_settings_follow_the_spec_and_the_pool() -> None:
    spec = ImagePipelineSpec.model_validate(
        {
            **BASE_SPEC,
            "retry": {"maxDeliveries": 4, "ackWait": "45s", "backoff": ["5s", "1m"]},
            "queue": {"maxAge": "24h"},
        }
    )
    placement = RegionPlacement(
        "eu-west", "eu-west", 100, ("nats://a:4222",), stream_replicas=3, placement_cluster="c1"
    )
    settings = pipeline_stream_settings(spec, placement)
    assert settings.replicas == 3
    assert settings.placement_cluster == "c1"
    assert settings.ack_wait_seconds == 45.0
    assert settings.max_deliver == 4
    assert settings.backoff_seconds == (5.0, 60.0)
    assert settings.max_age_seconds == 86_400.0
    assert settings.max_bytes == -1


def test_stream_settings_jetstream_would_refuse_raise() -> None:
    spec = ImagePipelineSpec.model_validate(
        {**BASE_SPEC, "queue": {"maxAge": "1m", "duplicateWindow": "10m"}}
    )
    placement = RegionPlacement("eu-west", "eu-west", 100, ("nats://a:4222",))
    with pytest.raises(ValueError, match="duplicate window"):
        pipeline_stream_settings(spec, placement)
