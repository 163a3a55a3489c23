"""What the reconciler works from: a pipeline placed in one region, as plain frozen data.

`RegionPlacement` is a RegionPool resolved for use (or the operator's own region when a pipeline
names no pool); `WorkerTarget` is one pipeline's workers in one region. Builders and runtimes take
these, never kopf bodies, so the same code serves the Kubernetes and the process runtimes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pixelmesh.api.messages import PipelineRef, PipelineRevision
from pixelmesh.api.resources import ClusterRef, ImagePipelineSpec, Placement, RegionPoolSpec, SecretKeyRef
from pixelmesh.operator import names


@dataclass(frozen=True, slots=True)
class RegionPlacement:
    """A region a pipeline runs in, with everything needed to reach it."""

    region: str
    pool: str
    """The RegionPool's name; empty for the operator's own region."""
    weight: int
    """The pipeline's weight for this region (from the spec; effective weights come later)."""
    nats_urls: tuple[str, ...]
    nats_credentials: SecretKeyRef | None = None
    stream_replicas: int = 1
    placement_cluster: str | None = None
    placement: Placement = field(default_factory=Placement)
    capacity: int | None = None
    """The pool's `capacity.maxWorkers`: most workers across its pipelines (None: no limit)."""
    cluster: ClusterRef | None = None
    """None: the operator's own cluster."""
    nats_monitoring_endpoint: str | None = None
    """`host:port` of the NATS monitoring endpoint (for KEDA); None: derived from the first URL."""
    nats_account: str = "$G"

    @classmethod
    def from_pool(cls, pool_name: str, pool: RegionPoolSpec, weight: int) -> RegionPlacement:
        return cls(
            region=pool.region,
            pool=pool_name,
            weight=weight,
            nats_urls=tuple(pool.nats.urls),
            nats_credentials=pool.nats.credentials_secret,
            stream_replicas=pool.nats.replicas,
            placement_cluster=pool.nats.placement_cluster,
            placement=pool.placement,
            capacity=pool.capacity.max_workers,
            cluster=pool.cluster,
            nats_monitoring_endpoint=pool.nats.monitoring_endpoint,
            nats_account=pool.nats.account,
        )


@dataclass(frozen=True, slots=True)
class Topology:
    """The regions the operator knows and who backs up whom: what replication between regions needs.

    `home` is the operator's own region, where it writes the routing table that every other region
    mirrors.
    """

    home: str
    regions: tuple[str, ...]
    backups: tuple[tuple[str, str], ...] = ()
    """(region, its backup region) pairs."""

    @classmethod
    def single(cls, region: str) -> Topology:
        return cls(home=region, regions=(region,))

    @classmethod
    def from_pools(cls, home: str, pools: Mapping[str, RegionPoolSpec]) -> Topology:
        regions = tuple(sorted({pool.region for pool in pools.values()}))
        backups = tuple(
            sorted(
                (pool.region, pool.failover.backup_region)
                for pool in pools.values()
                if pool.failover.backup_region and pool.failover.backup_region != pool.region
            )
        )
        return cls(home=home, regions=regions, backups=backups)

    def backup_of(self, region: str) -> str | None:
        return next((backup for origin, backup in self.backups if origin == region), None)

    def backed_up_by(self, region: str) -> tuple[str, ...]:
        """The regions whose backup `region` is."""
        return tuple(origin for origin, backup in self.backups if backup == region)


@dataclass(frozen=True, slots=True)
class GeoPlacement:
    """Where `durability: geo` pipelines keep jobs, sources and outputs: a NATS cluster whose
    servers span regions, with one replica per region."""

    cluster: str = "geo"
    replicas: int = 3


DEFAULT_WORKER_IMAGE = "ghcr.io/pixelmesh/pixelmesh:0.1.0"


@dataclass(frozen=True, slots=True)
class WorkerDefaults:
    """Operator-wide settings for worker pods that a pipeline does not set itself."""

    image: str = DEFAULT_WORKER_IMAGE
    image_pull_policy: str | None = None
    log_format: str = "json"


@dataclass(frozen=True, slots=True)
class WorkerTarget:
    """One pipeline's workers in one region, as the spec wants them."""

    ref: PipelineRef
    uid: str
    """The ImagePipeline's uid, for owner references; empty when there is no API object (local stack)."""
    spec: ImagePipelineSpec
    revision: PipelineRevision
    placement: RegionPlacement
    defaults: WorkerDefaults = field(default_factory=WorkerDefaults)

    @property
    def region(self) -> str:
        return self.placement.region

    @property
    def names(self) -> names.ChildNames:
        return names.child_names(self.ref.name, self.placement.region)

    @property
    def in_own_cluster(self) -> bool:
        """Children can carry owner references (garbage collection) only in the pipeline's cluster."""
        return self.placement.cluster is None and bool(self.uid)


@dataclass(frozen=True, slots=True)
class WorkerKey:
    """Names one pipeline's workers in one region, for runtimes to look them up."""

    ref: PipelineRef
    region: str

    def __str__(self) -> str:
        return f"{self.ref} in region {self.region}"
