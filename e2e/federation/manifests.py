"""The objects a federated world is made of, as plain dicts (pure functions, no API calls).

A platform team federating regions applies exactly these: one RegionPool per region in the hub
(the hub's own without `cluster`, each member's with the Secret that holds its kubeconfig), the
Secrets, and ImagePipelines that list the pools. The harness applies them with kubectl as admin,
so the API server validates them as it would a team's YAML.

Probe settings are short so that a test sees a region fail and recover in seconds; backups form a
ring (each region's backup is the next one), so every region is some region's backup.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pixelmesh.api.resources import API_VERSION

JsonObject = dict[str, Any]

KUBECONFIG_KEY = "kubeconfig"


@dataclass(frozen=True, slots=True)
class ProbeSettings:
    """`RegionPool.spec.failover` timings, quick enough for a test."""

    interval: str = "500ms"
    timeout: str = "1s"
    failure_threshold: int = 2
    recovery_threshold: int = 2


def backup_ring(regions: Sequence[str]) -> dict[str, str]:
    """Each region's backup is the next region, the last one's the first: r1->r2, r2->r3, r3->r1."""
    if len(regions) < 2:
        raise ValueError(f"a backup ring needs at least two regions, got {list(regions)}")
    return {region: regions[(i + 1) % len(regions)] for i, region in enumerate(regions)}


def kubeconfig_secret(namespace: str, name: str, kubeconfig: str) -> JsonObject:
    """A Secret in the hub holding a member cluster's kubeconfig under `KUBECONFIG_KEY`."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "Opaque",
        "data": {KUBECONFIG_KEY: base64.b64encode(kubeconfig.encode()).decode()},
    }


def region_pool(
    region: str,
    *,
    nats_urls: Sequence[str],
    backup_region: str,
    placement_cluster: str | None = None,
    kubeconfig_secret: tuple[str, str] | None = None,
    max_workers: int | None = None,
    probes: ProbeSettings = ProbeSettings(),
) -> JsonObject:
    """The RegionPool named after `region`; `kubeconfig_secret` is (namespace, name) for a member."""
    nats: JsonObject = {"urls": list(nats_urls)}
    if placement_cluster is not None:
        nats["placementCluster"] = placement_cluster
    spec: JsonObject = {
        "region": region,
        "nats": nats,
        "failover": {
            "backupRegion": backup_region,
            "probeInterval": probes.interval,
            "probeTimeout": probes.timeout,
            "failureThreshold": probes.failure_threshold,
            "recoveryThreshold": probes.recovery_threshold,
        },
    }
    if kubeconfig_secret is not None:
        namespace, name = kubeconfig_secret
        spec["cluster"] = {"kubeconfigSecret": {"namespace": namespace, "name": name, "key": KUBECONFIG_KEY}}
    if max_workers is not None:
        spec["capacity"] = {"maxWorkers": max_workers}
    return {"apiVersion": API_VERSION, "kind": "RegionPool", "metadata": {"name": region}, "spec": spec}


def thumbnail_pipeline(
    namespace: str,
    name: str,
    weights: Mapping[str, int],
    *,
    durability: str = "regional",
    width: int = 32,
    min_replicas: int = 1,
    max_replicas: int = 2,
    concurrency: int = 2,
    traffic_shift: Mapping[str, Any] | None = None,
) -> JsonObject:
    """A tiny ImagePipeline: one JPEG thumbnail `width` pixels wide, run in the pools of `weights`.

    Cheap enough that thousands of jobs take seconds on two cores: the sources are tiny too.
    `traffic_shift` is the spec's `trafficShift` as written (e.g. `{"stepPercent": 25}`).
    """
    document: JsonObject = {
        "apiVersion": API_VERSION,
        "kind": "ImagePipeline",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "input": {"maxBytes": 1024 * 1024, "maxPixels": 4_000_000},
            "variants": [
                {
                    "name": "thumb",
                    "steps": [{"thumbnail": {"width": width}}],
                    "format": {"type": "jpeg", "quality": 80},
                }
            ],
            "regions": [{"pool": pool, "weight": weight} for pool, weight in weights.items()],
            "durability": durability,
            "autoscaling": {
                "minReplicas": min_replicas,
                "maxReplicas": max_replicas,
                "targetBacklogPerReplica": 50,
                "scaleDownDelay": "30s",
            },
            "worker": {
                "concurrency": concurrency,
                "drainTimeout": "2s",
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
            },
            "retry": {"ackWait": "10s"},
            "queue": {"duplicateWindow": "10m"},
        },
    }
    if traffic_shift is not None:
        document["spec"]["trafficShift"] = dict(traffic_shift)
    return document
