"""The custom resources: ImagePipeline (namespaced) and RegionPool (cluster-scoped).

These models are the `pixelmesh.io/v1alpha1` API. The CRDs in `crds/` are generated from them
(`python -m pixelmesh.operator.crdgen`), the operator parses what the API server stores with them,
and the local stack reads the same YAML files with them. Attribute docstrings become the schema's
descriptions, so they are written for a reader of `kubectl explain`.

An ImagePipeline's spec is a `PipelineSpec` (what the worker does) plus where and how it runs:
regions, traffic shifting, durability, autoscaling, the worker pods, retries and queue limits.
Durations are strings in Go's notation (`30s`, `5m`, `1h30m`), as elsewhere in Kubernetes; the CEL
rules of the CRD can compare them with `duration()`.

Caveat: a few cross-field rules (options that do not apply to an output format, for instance) are
checked only here, not by the API server. The operator reports a spec that fails them as a
`Ready=False` condition with reason `InvalidSpec` and a Warning Event.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import ConfigDict, Field
from pydantic.config import JsonDict

from pixelmesh.api.base import ApiModel
from pixelmesh.api.pipeline import PipelineSpec

GROUP = "pixelmesh.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

_DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

Duration = Annotated[str, Field(pattern=_DURATION_PATTERN, max_length=32)]
"""A duration such as `30s`, `5m` or `1h30m` (no description of its own: the field's docstring wins)."""
DnsLabel = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", min_length=1, max_length=63)]
_QUANTITY_PATTERN = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i|[munkMGTPE])?$"
Quantity = Annotated[
    Annotated[int, Field(ge=0)] | Annotated[str, Field(pattern=_QUANTITY_PATTERN, max_length=64)],
    Field(description="A Kubernetes quantity such as `500m`, `2` or `1Gi`."),
]
"""A resource quantity, an integer or a string with a suffix."""


def duration_seconds(duration: str) -> float:
    """The seconds in a duration string (`1m30s` -> 90.0). ValueError if it is not one."""
    if not re.fullmatch(_DURATION_PATTERN, duration):
        raise ValueError(f"not a duration: {duration!r}")
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _DURATION_PART.findall(duration))


# --- shared pieces -------------------------------------------------------------------------------


_LIST_MAP_BY_TYPE: JsonDict = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
}
"""Conditions are a list keyed by `type`, as in every Kubernetes API (server-side apply merges them)."""


class ConditionStatus(StrEnum):
    """Whether the condition holds: True, False, or Unknown."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    """A metav1 Condition: one aspect of the object's state, with the reason it is so."""

    type: str = Field(pattern=r"^[A-Z][A-Za-z0-9]*$", max_length=316)
    """The aspect, e.g. `Ready` or `StreamReady`."""
    status: ConditionStatus
    reason: str = Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", max_length=1024)
    """A CamelCase word a program can match on, e.g. `PoolNotFound`."""
    message: str = Field(default="", max_length=32768)
    """What a human needs to know, in a sentence."""
    last_transition_time: datetime
    """When `status` last changed (not when the condition was last checked)."""
    observed_generation: int = Field(default=0, ge=0)
    """The `metadata.generation` the condition was computed from."""


class ObjectMeta(ApiModel):
    """The part of Kubernetes object metadata the local stack reads from a YAML file."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=253)
    namespace: str = "default"
    generation: int = Field(default=1, ge=1)
    uid: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class SecretKeyRef(ApiModel):
    """A key of a Secret."""

    name: DnsLabel
    """The Secret's name."""
    namespace: DnsLabel
    """The Secret's namespace (RegionPools are cluster-scoped, so it is always spelled out)."""
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")
    """The key within the Secret."""


class TolerationOperator(StrEnum):
    """`Exists` matches any value of the key; `Equal` matches `value`."""

    EXISTS = "Exists"
    EQUAL = "Equal"


class TaintEffect(StrEnum):
    """The taint effect to tolerate."""

    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


class Toleration(ApiModel):
    """A pod toleration, as in a PodSpec."""

    key: str | None = None
    operator: TolerationOperator = TolerationOperator.EQUAL
    value: str | None = None
    effect: TaintEffect | None = None
    """Omitted: every effect."""
    toleration_seconds: int | None = Field(default=None, ge=0)
    """How long a `NoExecute` taint is tolerated before eviction."""


# --- RegionPool ----------------------------------------------------------------------------------


class ClusterRef(ApiModel):
    """The Kubernetes cluster of a region, reached through a kubeconfig stored in a Secret."""

    kubeconfig_secret: SecretKeyRef
    """The Secret (in the operator's cluster) holding the region's kubeconfig."""


class NatsEndpoint(ApiModel):
    """The region's NATS cluster."""

    urls: list[str] = Field(min_length=1, max_length=16)
    """Server URLs, e.g. `nats://nats.eu-west.svc:4222`. The client picks any and fails over."""
    credentials_secret: SecretKeyRef | None = None
    """A NATS credentials file (`.creds`) in a Secret. Omitted: connect without credentials."""
    placement_cluster: str | None = Field(default=None, max_length=253)
    """The NATS cluster name that holds this region's streams in a supercluster."""
    replicas: int = Field(default=1, ge=1, le=5)
    """Copies of each stream and bucket (3 in production NATS clusters)."""
    monitoring_endpoint: str | None = Field(default=None, max_length=253, pattern=r"^[^\s/:]+:[0-9]{1,5}$")
    """`host:port` of the NATS HTTP monitoring endpoint, which a KEDA ScaledObject reads
    (`autoscaling.engine: keda`). Omitted: the first URL's host on port 8222."""
    account: str = Field(default="$G", min_length=1, max_length=128)
    """The NATS account holding the region's streams, as the monitoring endpoint names it (`$G` when
    the server has no accounts). Only KEDA needs it."""


class Capacity(ApiModel):
    """What the region can run."""

    max_workers: int | None = Field(default=None, ge=0)
    """Most worker replicas across all pipelines in the region. Omitted: no limit."""


class Failover(ApiModel):
    """How the region's health is judged and where its work goes when it fails."""

    backup_region: DnsLabel | None = None
    """The region that mirrors this region's job streams and drains them if this region fails."""
    probe_interval: Duration = "10s"
    """How often the operator probes the region."""
    probe_timeout: Duration = "2s"
    """How long one probe may take before it counts as a failure."""
    failure_threshold: int = Field(default=3, ge=1, le=100)
    """Consecutive failed probes before the region is Failed."""
    recovery_threshold: int = Field(default=3, ge=1, le=100)
    """Consecutive good probes before a Failed region is Healthy again."""


class Placement(ApiModel):
    """Where in the region's cluster worker pods are scheduled."""

    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list, max_length=32)
    zone_topology_key: str = Field(default="topology.kubernetes.io/zone", max_length=253)
    """The node label that tells zones apart; workers are spread evenly across its values."""


class RegionPoolSpec(ApiModel):
    """One region: a Kubernetes cluster and a NATS cluster with JetStream."""

    region: DnsLabel
    """The region's name, e.g. `eu-west`. Immutable: jobs, streams and routes are keyed by it."""
    cluster: ClusterRef | None = None
    """The region's Kubernetes cluster. Omitted: the operator's own cluster."""
    nats: NatsEndpoint
    """The region's NATS cluster with JetStream, where its job streams and buckets live."""
    capacity: Capacity = Field(default_factory=Capacity)
    """What the region can run; pipelines share it by priority."""
    weight: int = Field(default=100, ge=0, le=1000)
    """The region's share of traffic relative to other regions, for pipelines that do not weigh it."""
    failover: Failover = Field(default_factory=Failover)
    """Health probing and the backup region."""
    placement: Placement = Field(default_factory=Placement)
    """Node selection for the region's worker pods."""


class RegionPhase(StrEnum):
    """A region's health as the operator last judged it."""

    UNKNOWN = "Unknown"
    HEALTHY = "Healthy"
    DEGRADED = "Degraded"
    FAILED = "Failed"


class RegionPoolStatus(ApiModel):
    """What the operator last saw of the region."""

    observed_generation: int = Field(default=0, ge=0)
    phase: RegionPhase = RegionPhase.UNKNOWN
    conditions: list[Condition] = Field(default_factory=list, json_schema_extra=_LIST_MAP_BY_TYPE)
    last_probe_time: datetime | None = None
    round_trip_milliseconds: float | None = Field(default=None, ge=0)
    """The NATS round trip measured by the last successful probe."""
    consecutive_failures: int = Field(default=0, ge=0)
    consecutive_successes: int = Field(default=0, ge=0)
    active_workers: int = Field(default=0, ge=0)
    """Ready workers of all pipelines placed in the region."""


class RegionPool(ApiModel):
    """A RegionPool object as read from a file or the API server."""

    api_version: Literal["pixelmesh.io/v1alpha1"] = "pixelmesh.io/v1alpha1"
    kind: Literal["RegionPool"] = "RegionPool"
    metadata: ObjectMeta
    spec: RegionPoolSpec
    status: RegionPoolStatus | None = None


# --- ImagePipeline -------------------------------------------------------------------------------


class RegionWeight(ApiModel):
    """A region the pipeline runs in, and its share of the pipeline's traffic."""

    pool: DnsLabel
    """The RegionPool's name."""
    weight: int = Field(default=100, ge=0, le=1000)
    """Relative share of new jobs. 0 keeps workers and streams there but sends no new jobs."""


class TrafficShift(ApiModel):
    """How a change of region weights is rolled out: in guarded steps, rolled back on a breach."""

    step_percent: int = Field(default=10, ge=1, le=100)
    """Percentage points of traffic moved per step."""
    interval: Duration = "1m"
    """Time between steps; the guards judge each step over this interval."""
    max_error_rate: float = Field(default=0.05, ge=0.0, le=1.0)
    """Failed jobs over finished jobs in a region that received traffic; above it the shift rolls back."""
    max_p99_latency: Duration | None = None
    """99th percentile job latency (accept to outcome, jobs served over the interval) above which
    the shift rolls back; measured in buckets, so it reads as the bucket's upper bound
    (0.05s, 0.1s, 0.25s, 0.5s, 1s, 2.5s, 5s, 10s, 30s, 1m, 2m, 5m). Omitted: not checked."""


class Durability(StrEnum):
    """What a region's loss may cost."""

    REGIONAL = "regional"
    """Jobs are accepted region-locally and mirrored asynchronously to the backup region."""
    GEO = "geo"
    """Jobs are acknowledged by a quorum spanning regions: slower accepts, nothing lost."""


class ScalingEngine(StrEnum):
    """Who sets the worker count: the operator (`builtin`) or KEDA (`keda`, through a ScaledObject)."""

    BUILTIN = "builtin"
    """The operator sets the worker count."""
    KEDA = "keda"
    """The operator emits a KEDA ScaledObject and KEDA sets the worker count."""


class Autoscaling(ApiModel):
    """How many workers run in each region, from the backlog and the arrival rate."""

    min_replicas: int = Field(default=1, ge=0, le=10_000)
    """Fewest workers per region. 0 needs `scaleToZero`."""
    max_replicas: int = Field(default=10, ge=1, le=10_000)
    """Most workers per region (the region's capacity may cap it further)."""
    target_backlog_per_replica: int = Field(default=100, ge=1)
    """Pending jobs one worker is expected to hold; more backlog adds workers."""
    target_utilization: float = Field(default=0.8, gt=0.0, le=1.0)
    """Share of a worker's measured service rate the arrival rate may use."""
    scale_down_delay: Duration = "5m"
    """Stabilisation window: a scale-down uses the highest recommendation seen in it."""
    idle_after: Duration = "5m"
    """With nothing pending or arriving for this long, scale to `minReplicas` (zero if allowed)."""
    scale_to_zero: bool = False
    """Allow zero workers when idle; the first pending job brings one back."""
    engine: ScalingEngine = ScalingEngine.BUILTIN
    """`builtin`: the operator sets the worker count. `keda`: a KEDA ScaledObject does."""
    priority: int = Field(default=0, ge=-1000, le=1000)
    """When pipelines compete for a region's capacity, higher priority is served first."""
    interval: Duration | None = None
    """How often the built-in autoscaler decides for this pipeline. Omitted: the operator's
    `--autoscaler-interval-seconds` (5s)."""


class PullPolicy(StrEnum):
    """When the kubelet pulls the worker image."""

    ALWAYS = "Always"
    IF_NOT_PRESENT = "IfNotPresent"
    NEVER = "Never"


class ResourceRequirements(ApiModel):
    """Compute resources of one worker container."""

    requests: dict[str, Quantity] = Field(default_factory=dict)
    limits: dict[str, Quantity] = Field(default_factory=dict)


def _default_resources() -> ResourceRequirements:
    return ResourceRequirements(requests={"cpu": "1", "memory": "1Gi"}, limits={"memory": "2Gi"})


class WorkerSettings(ApiModel):
    """The worker pods."""

    image: str | None = Field(default=None, max_length=512)
    """The worker image. Omitted: the image the operator was installed with."""
    image_pull_policy: PullPolicy | None = None
    """Omitted: the operator's default (Kubernetes' own default when that is unset too)."""
    concurrency: int = Field(default=4, ge=1, le=256)
    """Jobs one worker processes at once."""
    resources: ResourceRequirements = Field(default_factory=_default_resources)
    """Requests and limits of the worker container. Omitted: 1 CPU and 1Gi requested, 2Gi limit."""
    drain_timeout: Duration = "60s"
    """Time a stopping worker has to finish its jobs before they are redelivered elsewhere."""
    priority_class_name: str | None = Field(default=None, max_length=253)
    log_level: Literal["debug", "info", "warning", "error"] = "info"


class Retry(ApiModel):
    """Redelivery of jobs that failed transiently or whose worker died."""

    max_deliveries: int = Field(default=5, ge=1, le=100)
    """Deliveries before a job is dead-lettered."""
    ack_wait: Duration = "30s"
    """Silence from a worker after which its job is redelivered (workers heartbeat while working)."""
    backoff: list[Duration] = Field(default_factory=list, max_length=100)
    """Delays before the 1st, 2nd, ... redelivery; overrides `ackWait` for redeliveries."""
    max_ack_pending: int = Field(default=1000, ge=1, le=1_000_000)
    """Jobs handed to workers and not yet finished, across all workers of a region."""


class Queue(ApiModel):
    """Limits of the pipeline's job stream in each region."""

    max_age: Duration = "168h"
    """Jobs older than this are dropped unprocessed (`0s`: never)."""
    max_bytes: int | None = Field(default=None, ge=1)
    """Largest size of the queue; further jobs are refused. Omitted: unlimited."""
    duplicate_window: Duration = "10m"
    """A job id submitted twice within this window is queued once."""


class Outputs(ApiModel):
    """Retention of the pipeline's outputs in each region."""

    max_age: Duration = "0s"
    """Outputs expire after this (`0s`: kept while the pipeline exists)."""
    max_bytes: int | None = Field(default=None, ge=1)
    """Largest size of the outputs store. Omitted: unlimited."""


class DeletionPolicy(StrEnum):
    """What happens to a pipeline's streams and stored outputs when it is deleted."""

    RETAIN = "Retain"
    """Keep them: a re-created pipeline of the same name finds its queue and outputs."""
    DELETE = "Delete"
    """Delete them with the pipeline."""


class ImagePipelineSpec(PipelineSpec):
    """An image pipeline, where it runs and how: the steps and variants, regions, scaling, workers."""

    regions: list[RegionWeight] = Field(default_factory=list, max_length=32)
    """The RegionPools the pipeline runs in. Omitted: the operator's own region."""
    traffic_shift: TrafficShift = Field(default_factory=TrafficShift)
    """How weight changes between regions are rolled out."""
    durability: Durability = Durability.REGIONAL
    """`regional`: fast region-local accepts, mirrored to the backup region (a region's loss can lose
    the unmirrored tail). `geo`: accepts acknowledged across regions (slower, nothing lost)."""
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    """How many workers run per region."""
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    """The worker pods: image, concurrency, resources, drain timeout."""
    retry: Retry = Field(default_factory=Retry)
    """Redelivery of jobs that failed transiently."""
    queue: Queue = Field(default_factory=Queue)
    """Limits of the job stream in each region."""
    outputs: Outputs = Field(default_factory=Outputs)
    """Retention of outputs in each region."""
    deletion_policy: DeletionPolicy = DeletionPolicy.RETAIN
    """`Retain` keeps the job streams and outputs when the pipeline is deleted; `Delete` removes them."""

    def pipeline(self) -> PipelineSpec:
        """What the worker needs: the pipeline without its placement and operations settings."""
        return PipelineSpec.model_validate({name: getattr(self, name) for name in PipelineSpec.model_fields})


class PipelinePhase(StrEnum):
    """Where the pipeline stands as a whole."""

    PENDING = "Pending"
    """Nothing is running yet."""
    PROGRESSING = "Progressing"
    """Workers or streams are being created or rolled."""
    READY = "Ready"
    """Streams exist and workers are available in every region."""
    DEGRADED = "Degraded"
    """Running, but some region lacks workers or its stream."""
    FAILED = "Failed"
    """The operator cannot act on the spec (invalid, or an unknown pool)."""


class ShiftStatus(StrEnum):
    """Where the rollout of the spec's region weights stands."""

    STEADY = "Steady"
    """The effective weights are the spec's (or as close as the routable regions allow)."""
    SHIFTING = "Shifting"
    """Moving toward the spec's weights in steps."""
    ROLLED_BACK = "RolledBack"
    """A step breached a guard: back at the last good weights until the spec changes."""
    FAILED_OVER = "FailedOver"
    """A region is not routable: its share went to the others at once."""
    NO_ROUTABLE_REGION = "NoRoutableRegion"
    """No region is routable: the weights stay as they were."""


class TrafficStatus(ApiModel):
    """The rollout of the spec's region weights, and why it stands where it does."""

    state: ShiftStatus = ShiftStatus.STEADY
    reason: str = Field(default="", max_length=128)
    message: str = Field(default="", max_length=1024)
    """Why, e.g. the guard a step breached and the region's reading."""
    generation: int = Field(default=0, ge=0)
    """The routing table's generation of the effective weights in `regions[].weight`."""


class PipelineRegionStatus(ApiModel):
    """The pipeline in one region."""

    region: str
    pool: str = ""
    """The RegionPool, empty for the operator's own region."""
    weight: int = Field(default=0, ge=0)
    """The effective weight new jobs are routed by."""
    desired_replicas: int = Field(default=0, ge=0)
    ready_replicas: int = Field(default=0, ge=0)
    backlog: int | None = Field(default=None, ge=0)
    """Jobs waiting plus jobs being worked on (consumer pending + ack pending). Omitted: unknown."""
    scaling_reason: str = ""
    """Why `desiredReplicas` is what it is: `minimum`, `backlog`, `arrival-rate`, `capacity-capped`..."""
    stream_ready: bool = False
    message: str = ""
    """What is wrong in this region, if anything."""


class ImagePipelineStatus(ApiModel):
    """What the operator last did and saw."""

    observed_generation: int = Field(default=0, ge=0)
    phase: PipelinePhase = PipelinePhase.PENDING
    conditions: list[Condition] = Field(default_factory=list, json_schema_extra=_LIST_MAP_BY_TYPE)
    regions: list[PipelineRegionStatus] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["region"]},
    )
    desired_replicas: int = Field(default=0, ge=0)
    """Desired workers across regions."""
    ready_replicas: int = Field(default=0, ge=0)
    """Ready workers across regions."""
    backlog: int | None = Field(default=None, ge=0)
    """Jobs pending across regions."""
    region_summary: str = ""
    """The regions and their weights, e.g. `eu-west=70,us-east=30`."""
    pipeline_hash: str = ""
    """Hash of the pipeline part of the spec; it changes when limits, steps or variants change."""
    pipeline_generation: int = Field(default=0, ge=0)
    """The generation at which the pipeline part last changed: the generation in output keys."""
    traffic: TrafficStatus | None = None
    """The rollout of the region weights; omitted until the first routing decision."""


class ImagePipeline(ApiModel):
    """An ImagePipeline object as read from a file or the API server."""

    api_version: Literal["pixelmesh.io/v1alpha1"] = "pixelmesh.io/v1alpha1"
    kind: Literal["ImagePipeline"] = "ImagePipeline"
    metadata: ObjectMeta
    spec: ImagePipelineSpec
    status: ImagePipelineStatus | None = None
