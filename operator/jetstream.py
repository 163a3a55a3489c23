"""The JetStream resources a pipeline and a region need, described as plain data.

The operator, the local stack and the tests provision the same resources: per pipeline a
work-queue job stream, the durable pull consumer its workers share, and an outputs object store;
per region the shared buckets (sources, completion records, dead letters, accepted jobs, routing
table, worker stats). These builders are pure functions of a pipeline reference and frozen
settings; they return our own frozen descriptions, and `clients/jetstream.py` turns them into
nats-py calls. Keeping nats out of this module keeps it testable and lets a reconcile plan compare
desired and observed resources without I/O.

Caveats that shape the settings:
- A consumer's `backoff` list overrides `ack_wait`: the server waits `backoff[0]` before the first
  redelivery of an unacknowledged message. Leave it empty to redeliver every `ack_wait`. Workers
  send `in_progress()` heartbeats, so `ack_wait` bounds how long a crashed worker's jobs stay
  invisible, not how long a job may run.
- Retention, storage type and a stream's name cannot change in place. `plan_change` reports such a
  difference as a conflict instead of recreating the stream: recreating a job stream drops every
  accepted job.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum

from pixelmesh.api import streams
from pixelmesh.api.messages import PipelineRef

DAY = 86_400.0


class Retention(StrEnum):
    """How a stream decides that a message is gone."""

    LIMITS = "limits"
    WORK_QUEUE = "workqueue"
    INTEREST = "interest"


class Storage(StrEnum):
    FILE = "file"
    MEMORY = "memory"


class Discard(StrEnum):
    OLD = "old"
    NEW = "new"


@dataclass(frozen=True, slots=True)
class PipelineStreamSettings:
    """How one pipeline's job stream, worker consumer and outputs store are provisioned."""

    replicas: int = 1
    """Copies of each stream (3 in production clusters)."""
    storage: Storage = Storage.FILE
    max_age_seconds: float = 7 * DAY
    """Jobs older than this are dropped from the stream unprocessed (0: never)."""
    max_bytes: int = -1
    """Upper bound on the job stream's size (-1: unlimited). New jobs are refused beyond it."""
    max_msg_size: int = 64 * 1024
    """A job message is metadata only; sources travel through the object store."""
    duplicate_window_seconds: float = 600.0
    """A job id published twice within this window is stored once."""
    ack_wait_seconds: float = 30.0
    """Time a worker has to ack, nak or send `in_progress` before the job is redelivered."""
    max_deliver: int = 5
    """Deliveries before the server gives up on a job (a dead-letter record follows)."""
    backoff_seconds: tuple[float, ...] = ()
    """Redelivery delays after unacknowledged deliveries; overrides `ack_wait` when set."""
    max_ack_pending: int = 1000
    """Jobs handed out and not yet acknowledged, across all workers of the pipeline."""
    max_waiting: int = 512
    """Concurrent pull requests the consumer accepts."""
    outputs_max_age_seconds: float = 0.0
    """Outputs expire after this (0: kept until the pipeline is deleted)."""
    outputs_max_bytes: int = -1
    placement_cluster: str | None = None
    """The NATS cluster (region) that holds the streams; None: where the request lands."""
    region: str = "local"
    """The region whose jobs the stream holds (its name is part of every resource's name)."""

    def __post_init__(self) -> None:
        problems = []
        if not 1 <= self.replicas <= 5:
            problems.append(f"replicas must be 1-5, got {self.replicas}")
        if self.ack_wait_seconds <= 0:
            problems.append("ackWait must be positive")
        if self.max_deliver < 1:
            problems.append("maxDeliver must be at least 1")
        if any(delay <= 0 for delay in self.backoff_seconds):
            problems.append("every backoff delay must be positive")
        if len(self.backoff_seconds) > self.max_deliver:
            problems.append("backoff may not list more delays than maxDeliver")
        if self.max_ack_pending < 1:
            problems.append("maxAckPending must be at least 1")
        if self.duplicate_window_seconds <= 0:
            problems.append("the duplicate window must be positive")
        if 0 < self.max_age_seconds < self.duplicate_window_seconds:
            problems.append("the duplicate window may not exceed maxAge")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True, slots=True)
class RegionBucketSettings:
    """How a region's shared buckets are provisioned."""

    replicas: int = 1
    storage: Storage = Storage.FILE
    sources_ttl_seconds: float = 7 * DAY
    """Sources must outlive the jobs that name them: keep this >= the job streams' maxAge."""
    sources_max_bytes: int = -1
    completions_ttl_seconds: float = 14 * DAY
    """Completion records must outlive any redelivery of their job (idempotency)."""
    dead_letters_ttl_seconds: float = 30 * DAY
    accepted_ttl_seconds: float = 7 * DAY
    worker_stats_ttl_seconds: float = 60.0
    """Worker heartbeats vanish when a worker stops sending them."""
    placement_cluster: str | None = None
    region: str = "local"
    peers: tuple[str, ...] = ()
    """The other regions: their completion records are replicated into this one."""
    backed_up: tuple[str, ...] = ()
    """Regions this one is the backup of: their sources are replicated into this one."""
    routing_origin: str | None = None
    """The region the routing table is written in; any other region holds a mirror of it."""

    def __post_init__(self) -> None:
        if not 1 <= self.replicas <= 5:
            raise ValueError(f"replicas must be 1-5, got {self.replicas}")
        ttls = (
            self.sources_ttl_seconds,
            self.completions_ttl_seconds,
            self.dead_letters_ttl_seconds,
            self.accepted_ttl_seconds,
            self.worker_stats_ttl_seconds,
        )
        if any(ttl < 0 for ttl in ttls):
            raise ValueError("bucket TTLs may not be negative")


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """A stream as we want it."""

    name: str
    subjects: tuple[str, ...]
    retention: Retention
    storage: Storage
    replicas: int
    max_age_seconds: float
    max_bytes: int
    max_msg_size: int
    duplicate_window_seconds: float
    discard: Discard
    placement_cluster: str | None = None
    description: str = ""

    IMMUTABLE = ("name", "retention", "storage")


@dataclass(frozen=True, slots=True)
class ConsumerSpec:
    """A durable pull consumer with explicit acks, as we want it."""

    stream: str
    durable: str
    filter_subject: str
    ack_wait_seconds: float
    max_deliver: int
    backoff_seconds: tuple[float, ...]
    max_ack_pending: int
    max_waiting: int
    description: str = ""
    start_sequence: int = 0
    """The first stream sequence delivered (0: from the first message held)."""

    IMMUTABLE = ("stream", "durable", "start_sequence")


@dataclass(frozen=True, slots=True)
class KeyValueSpec:
    """A KV bucket as we want it."""

    bucket: str
    history: int
    ttl_seconds: float
    replicas: int
    storage: Storage
    max_bytes: int = -1
    max_value_size: int = -1
    placement_cluster: str | None = None
    description: str = ""
    direct: bool = True
    """Answers direct gets, which need no JetStream meta leader (`pixelmesh.directget`)."""

    IMMUTABLE = ("bucket", "storage")


@dataclass(frozen=True, slots=True)
class ObjectStoreSpec:
    """An object store bucket as we want it."""

    bucket: str
    ttl_seconds: float
    replicas: int
    storage: Storage
    max_bytes: int = -1
    placement_cluster: str | None = None
    description: str = ""

    IMMUTABLE = ("bucket", "storage")


@dataclass(frozen=True, slots=True)
class MirrorSpec:
    """A read-only copy of a stream held in another region (the server keeps it up to date)."""

    name: str
    origin: str
    """The stream copied; a mirror keeps its subjects unless `subject_transform` renames them."""
    storage: Storage
    replicas: int
    max_age_seconds: float
    placement_cluster: str | None = None
    subject_transform: tuple[str, str] | None = None
    """(source, destination): makes a KV bucket's mirror readable as a bucket of its own name."""
    direct: bool = False
    """Answers direct gets (the KV client reads through them)."""
    history: int = -1
    """Messages kept per subject (-1: unlimited); 1 for a KV bucket's mirror."""
    description: str = ""

    IMMUTABLE = ("name", "origin", "storage", "subject_transform")


ResourceSpec = StreamSpec | ConsumerSpec | KeyValueSpec | ObjectStoreSpec | MirrorSpec


@dataclass(frozen=True, slots=True)
class PipelineResources:
    """Everything one pipeline needs in one region."""

    stream: StreamSpec
    consumer: ConsumerSpec
    outputs: ObjectStoreSpec


@dataclass(frozen=True, slots=True)
class RegionBuckets:
    """The buckets every pipeline of a region shares."""

    key_values: tuple[KeyValueSpec, ...]
    object_stores: tuple[ObjectStoreSpec, ...]
    mirrors: tuple[MirrorSpec, ...] = ()


class ChangeKind(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    NONE = "none"
    CONFLICT = "conflict"
    """The difference is in a field that cannot change in place."""


@dataclass(frozen=True, slots=True)
class Change:
    kind: ChangeKind
    fields: tuple[str, ...] = ()


def build_job_stream(ref: PipelineRef, settings: PipelineStreamSettings) -> StreamSpec:
    """The pipeline's work-queue job stream: each job is held until one worker acks or terms it."""
    return StreamSpec(
        name=streams.job_stream(ref, settings.region),
        subjects=(streams.job_subject(ref, settings.region),),
        retention=Retention.WORK_QUEUE,
        storage=settings.storage,
        replicas=settings.replicas,
        max_age_seconds=settings.max_age_seconds,
        max_bytes=settings.max_bytes,
        max_msg_size=settings.max_msg_size,
        duplicate_window_seconds=settings.duplicate_window_seconds,
        # A full queue refuses new jobs (the submitter sees the error) instead of dropping old ones.
        discard=Discard.NEW,
        placement_cluster=settings.placement_cluster,
        description=f"Jobs of ImagePipeline {ref}.",
    )


def build_worker_consumer(ref: PipelineRef, settings: PipelineStreamSettings) -> ConsumerSpec:
    """The durable pull consumer every worker of the pipeline fetches from."""
    return ConsumerSpec(
        stream=streams.job_stream(ref, settings.region),
        durable=streams.worker_consumer(ref),
        filter_subject=streams.job_subject(ref, settings.region),
        ack_wait_seconds=settings.ack_wait_seconds,
        max_deliver=settings.max_deliver,
        backoff_seconds=settings.backoff_seconds,
        max_ack_pending=settings.max_ack_pending,
        max_waiting=settings.max_waiting,
        description=f"Workers of ImagePipeline {ref}.",
    )


def build_outputs_store(ref: PipelineRef, settings: PipelineStreamSettings) -> ObjectStoreSpec:
    """The pipeline's outputs, keyed by `streams.output_key`."""
    return ObjectStoreSpec(
        bucket=streams.outputs_bucket(ref, settings.region),
        ttl_seconds=settings.outputs_max_age_seconds,
        replicas=settings.replicas,
        storage=settings.storage,
        max_bytes=settings.outputs_max_bytes,
        placement_cluster=settings.placement_cluster,
        description=f"Outputs of ImagePipeline {ref}.",
    )


def build_pipeline_resources(ref: PipelineRef, settings: PipelineStreamSettings) -> PipelineResources:
    return PipelineResources(
        stream=build_job_stream(ref, settings),
        consumer=build_worker_consumer(ref, settings),
        outputs=build_outputs_store(ref, settings),
    )


def build_job_mirror(ref: PipelineRef, origin: str, backup: PipelineStreamSettings) -> MirrorSpec:
    """The copy of `origin`'s job stream in its backup region (`backup` holds the backup's settings).

    It keeps what the origin's work queue drops once acknowledged, for as long as the origin would
    have kept an unprocessed job: a drain after a failover starts from the origin's last known
    acknowledgement floor and skips jobs whose completion record exists.
    """
    return MirrorSpec(
        name=streams.job_mirror_stream(ref, origin, backup.region),
        origin=streams.job_stream(ref, origin),
        storage=backup.storage,
        replicas=backup.replicas,
        max_age_seconds=backup.max_age_seconds,
        placement_cluster=backup.placement_cluster,
        description=f"Jobs of ImagePipeline {ref} accepted in region {origin}, mirrored for failover.",
    )


def build_drain_consumer(
    ref: PipelineRef, origin: str, backup: PipelineStreamSettings, *, start_sequence: int = 0
) -> ConsumerSpec:
    """The consumer the backup region's workers drain `origin`'s mirrored jobs with."""
    return ConsumerSpec(
        stream=streams.job_mirror_stream(ref, origin, backup.region),
        durable=streams.drain_consumer(ref, origin),
        filter_subject=streams.job_subject(ref, origin),
        ack_wait_seconds=backup.ack_wait_seconds,
        max_deliver=backup.max_deliver,
        backoff_seconds=backup.backoff_seconds,
        max_ack_pending=backup.max_ack_pending,
        max_waiting=backup.max_waiting,
        description=f"Drain of ImagePipeline {ref}'s jobs from failed region {origin}.",
        start_sequence=start_sequence,
    )


def build_region_buckets(settings: RegionBucketSettings) -> RegionBuckets:
    """The shared buckets named in `pixelmesh.api.streams`, and the region's copies of its peers'."""
    region = settings.region

    def kv(bucket: str, ttl: float, description: str) -> KeyValueSpec:
        return KeyValueSpec(
            bucket=bucket,
            history=1,
            ttl_seconds=ttl,
            replicas=settings.replicas,
            storage=settings.storage,
            placement_cluster=settings.placement_cluster,
            description=description,
        )

    def replica(origin: str, ttl: float, description: str) -> MirrorSpec:
        return MirrorSpec(
            name=streams.replica_stream(origin, region),
            origin=origin,
            storage=settings.storage,
            replicas=settings.replicas,
            max_age_seconds=ttl,
            placement_cluster=settings.placement_cluster,
            direct=True,
            description=description,
        )

    routing = streams.routing_bucket(region)
    routing_here = settings.routing_origin in (None, region)
    key_values = [
        kv(
            streams.completions_bucket(region),
            settings.completions_ttl_seconds,
            "Completion records by job id.",
        ),
        kv(
            streams.dead_letters_bucket(region),
            settings.dead_letters_ttl_seconds,
            "Dead-letter records by job id.",
        ),
        kv(streams.accepted_bucket(region), settings.accepted_ttl_seconds, "Accepted jobs by job id."),
        kv(streams.worker_stats_bucket(region), settings.worker_stats_ttl_seconds, "Worker heartbeats."),
    ]
    if routing_here:
        key_values.append(kv(routing, 0.0, "The routing table: effective weights per pipeline and region."))
    mirrors = [
        replica(
            streams.kv_stream(streams.completions_bucket(peer)),
            settings.completions_ttl_seconds,
            f"Completion records of region {peer}.",
        )
        for peer in settings.peers
        if peer != region
    ] + [
        replica(
            streams.object_stream(streams.sources_bucket(origin)),
            settings.sources_ttl_seconds,
            f"Sources of region {origin}, for a drain after its failover.",
        )
        for origin in settings.backed_up
        if origin != region
    ]
    if not routing_here:
        assert settings.routing_origin is not None
        origin_bucket = streams.routing_bucket(settings.routing_origin)
        mirrors.append(
            MirrorSpec(
                name=streams.kv_stream(routing),
                origin=streams.kv_stream(origin_bucket),
                storage=settings.storage,
                replicas=settings.replicas,
                max_age_seconds=0.0,
                placement_cluster=settings.placement_cluster,
                subject_transform=(f"$KV.{origin_bucket}.>", f"$KV.{routing}.>"),
                direct=True,
                history=1,
                description=f"The routing table, mirrored from region {settings.routing_origin}.",
            )
        )
    return RegionBuckets(
        key_values=tuple(key_values),
        mirrors=tuple(mirrors),
        object_stores=(
            ObjectStoreSpec(
                bucket=streams.sources_bucket(region),
                ttl_seconds=settings.sources_ttl_seconds,
                replicas=settings.replicas,
                storage=settings.storage,
                max_bytes=settings.sources_max_bytes,
                placement_cluster=settings.placement_cluster,
                description="Sources by sha256.",
            ),
        ),
    )


def plan_change(desired: ResourceSpec, observed: ResourceSpec | None) -> Change:
    """What to do to make `observed` (None: absent) into `desired`.

    Fields the server cannot change in place make a conflict, never a delete-and-create.
    """
    if observed is None:
        return Change(ChangeKind.CREATE)
    if type(observed) is not type(desired):
        raise TypeError(f"cannot compare a {type(desired).__name__} with a {type(observed).__name__}")
    differing = tuple(
        f.name for f in fields(desired) if getattr(desired, f.name) != getattr(observed, f.name)
    )
    if not differing:
        return Change(ChangeKind.NONE)
    immutable = tuple(name for name in differing if name in desired.IMMUTABLE)
    if immutable:
        return Change(ChangeKind.CONFLICT, immutable)
    return Change(ChangeKind.UPDATE, differing)
