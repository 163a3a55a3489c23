"""The KEDA ScaledObject of a pipeline under `autoscaling.engine: keda`, built only while KEDA's CRD exists.

For teams standardised on KEDA: its `nats-jetstream` scaler sizes the worker Deployment as
`ceil(lag / lagThreshold)` with lag = pending + ack pending, read from the NATS monitoring endpoint.
The spec's knobs map onto it as closely as KEDA allows:

- `targetBacklogPerReplica` -> the trigger's `lagThreshold`;
- activation on the first pending job -> `activationLagThreshold: "0"`;
- `minReplicas` (0 only with `scaleToZero`) and `maxReplicas` -> `minReplicaCount` and
  `maxReplicaCount`, the maximum capped by the pool's `capacity.maxWorkers`;
- `idleAfter` -> `cooldownPeriod` (KEDA's wait after the last active poll before going to zero);
- `scaleDownDelay` -> the HPA's `behavior.scaleDown.stabilizationWindowSeconds`;
- `interval` -> `pollingInterval`.

What KEDA cannot take: the arrival rate, the measured service rate, `targetUtilization`, and the
pool's capacity shared among pipelines (a static cap is the best it gets); see docs/autoscaling.md.
"""

from __future__ import annotations

import math
from urllib.parse import urlsplit

from pixelmesh.api import streams
from pixelmesh.api.resources import duration_seconds
from pixelmesh.operator import names
from pixelmesh.operator.autoscaling.policy import floor_replicas
from pixelmesh.operator.builders.hashing import KubeObject, child_metadata, with_spec_hash
from pixelmesh.operator.target import RegionPlacement, WorkerTarget

NATS_MONITORING_PORT = 8222
"""nats-server's conventional HTTP monitoring port (`-m 8222`, the Helm chart's default)."""
KEDA_POLLING_INTERVAL = "5s"
"""For pipelines that set no `autoscaling.interval` (the built-in engine's default too)."""
MAX_STABILIZATION_SECONDS = 3600
"""The HPA refuses a longer stabilisation window."""


def monitoring_endpoint(placement: RegionPlacement) -> str:
    """`host:port` of the region's NATS monitoring endpoint: as the pool says, else the first URL's host."""
    if placement.nats_monitoring_endpoint:
        return placement.nats_monitoring_endpoint
    host = urlsplit(placement.nats_urls[0]).hostname or "127.0.0.1"
    return f"{host}:{NATS_MONITORING_PORT}"


def _whole_seconds(duration: str, least: int = 1) -> int:
    return max(least, math.ceil(duration_seconds(duration)))


def replica_bounds(target: WorkerTarget) -> tuple[int, int]:
    """(minReplicaCount, maxReplicaCount): the spec's bounds, the maximum capped by the pool's capacity."""
    autoscaling = target.spec.autoscaling
    most = autoscaling.max_replicas
    if target.placement.capacity is not None:
        most = max(1, min(most, target.placement.capacity))
    return min(floor_replicas(autoscaling), most), most


def build_scaled_object(target: WorkerTarget) -> KubeObject:
    """The ScaledObject that lets KEDA set the worker Deployment's replicas."""
    autoscaling = target.spec.autoscaling
    least, most = replica_bounds(target)
    return with_spec_hash(
        {
            "apiVersion": f"{names.SCALED_OBJECT_GROUP}/{names.SCALED_OBJECT_VERSION}",
            "kind": "ScaledObject",
            "metadata": child_metadata(target, target.names.workers),
            "spec": {
                "scaleTargetRef": {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": target.names.workers,
                },
                "pollingInterval": _whole_seconds(autoscaling.interval or KEDA_POLLING_INTERVAL),
                "cooldownPeriod": _whole_seconds(autoscaling.idle_after),
                "minReplicaCount": least,
                "maxReplicaCount": most,
                "advanced": {
                    "horizontalPodAutoscalerConfig": {
                        "behavior": {
                            "scaleDown": {
                                "stabilizationWindowSeconds": min(
                                    MAX_STABILIZATION_SECONDS,
                                    _whole_seconds(autoscaling.scale_down_delay, least=0),
                                )
                            }
                        }
                    }
                },
                "triggers": [
                    {
                        "type": "nats-jetstream",
                        "metadata": {
                            "natsServerMonitoringEndpoint": monitoring_endpoint(target.placement),
                            "account": target.placement.nats_account,
                            "stream": streams.job_stream(target.ref, target.region),
                            "consumer": streams.worker_consumer(target.ref),
                            "lagThreshold": str(autoscaling.target_backlog_per_replica),
                            "activationLagThreshold": "0",
                        },
                    }
                ],
            },
        }
    )
