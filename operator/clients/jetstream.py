"""Create, update and delete JetStream resources from the descriptions in `operator.jetstream`.

Each `ensure_*` call reads what exists, turns it back into our description, asks the pure
`plan_change` what to do, and does only that: nothing when nothing drifted, an in-place update for
mutable fields, a create when absent. A difference in an immutable field (retention, storage) raises
`ProvisioningConflictError` and changes nothing: recreating a job stream would drop accepted jobs, so
that decision is left to a person.

Updates start from the observed server config and overwrite only the fields we manage, so settings
the server filled in (or another tool set) survive.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import NotFoundError

from pixelmesh.api import streams
from pixelmesh.api.messages import PipelineRef
from pixelmesh.operator.jetstream import (
    Change,
    ChangeKind,
    ConsumerSpec,
    Discard,
    KeyValueSpec,
    MirrorSpec,
    ObjectStoreSpec,
    PipelineStreamSettings,
    RegionBucketSettings,
    Retention,
    Storage,
    StreamSpec,
    build_pipeline_resources,
    build_region_buckets,
    plan_change,
)

logger = logging.getLogger(__name__)


class ProvisioningConflictError(RuntimeError):
    """An existing resource differs in a field that cannot be changed without recreating it."""

    def __init__(self, resource: str, fields: tuple[str, ...]) -> None:
        super().__init__(
            f"JetStream resource {resource} differs in immutable fields {list(fields)}; "
            "it was left unchanged (recreating it would lose its data)"
        )
        self.resource = resource
        self.fields = fields


@dataclass(frozen=True, slots=True)
class ProvisioningReport:
    """What each `ensure_*` call did, by resource name."""

    changes: dict[str, Change] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return any(change.kind is not ChangeKind.NONE for change in self.changes.values())


def _placement(cluster: str | None) -> js_api.Placement | None:
    return js_api.Placement(cluster=cluster) if cluster else None


def _placement_cluster(placement: js_api.Placement | None) -> str | None:
    return placement.cluster if placement is not None and placement.cluster else None


def _storage(storage: js_api.StorageType | None) -> Storage:
    return Storage.MEMORY if storage == js_api.StorageType.MEMORY else Storage.FILE


def _seconds(value: float | None) -> float:
    return float(value or 0.0)


def _duplicate_window_within(config: js_api.StreamConfig, ttl: float) -> float:
    """The server refuses a duplicate window longer than the max age: shrink it with a short TTL."""
    window = _seconds(config.duplicate_window)
    return min(window, ttl) if ttl > 0 and window > 0 else window


def _int_or_unlimited(value: int | None) -> int:
    return -1 if value is None or value <= 0 else value


async def _stream_config(js: JetStreamContext, name: str) -> js_api.StreamConfig | None:
    try:
        return (await js.stream_info(name)).config
    except NotFoundError:
        return None


# --- streams ------------------------------------------------------------------------------------


def _observed_stream(config: js_api.StreamConfig) -> StreamSpec:
    return StreamSpec(
        name=config.name or "",
        subjects=tuple(config.subjects or ()),
        # Responses carry enum fields as plain strings; both compare equal to the str-based enums.
        retention=Retention(str(config.retention or Retention.LIMITS)),
        storage=_storage(config.storage),
        replicas=config.num_replicas or 1,
        max_age_seconds=_seconds(config.max_age),
        max_bytes=_int_or_unlimited(config.max_bytes),
        max_msg_size=_int_or_unlimited(config.max_msg_size),
        duplicate_window_seconds=_seconds(config.duplicate_window),
        discard=Discard.NEW if config.discard == js_api.DiscardPolicy.NEW else Discard.OLD,
        placement_cluster=_placement_cluster(config.placement),
        description=config.description or "",
    )


def _apply_stream(spec: StreamSpec, base: js_api.StreamConfig | None) -> js_api.StreamConfig:
    return (base or js_api.StreamConfig()).evolve(
        name=spec.name,
        subjects=list(spec.subjects),
        retention=js_api.RetentionPolicy(spec.retention.value),
        storage=js_api.StorageType(spec.storage.value),
        num_replicas=spec.replicas,
        max_age=spec.max_age_seconds,
        max_bytes=spec.max_bytes,
        max_msg_size=spec.max_msg_size,
        duplicate_window=spec.duplicate_window_seconds,
        discard=js_api.DiscardPolicy(spec.discard.value),
        placement=_placement(spec.placement_cluster),
        description=spec.description or None,
    )


async def ensure_stream(js: JetStreamContext, spec: StreamSpec) -> Change:
    """Create the stream, or update its mutable fields if they drifted."""
    observed = await _stream_config(js, spec.name)
    change = plan_change(spec, _observed_stream(observed) if observed is not None else None)
    if change.kind is ChangeKind.CREATE:
        await js.add_stream(_apply_stream(spec, None))
        logger.info("Created stream %s.", spec.name)
    elif change.kind is ChangeKind.UPDATE:
        await js.update_stream(_apply_stream(spec, observed))
        logger.info("Updated stream %s: %s changed.", spec.name, ", ".join(change.fields))
    elif change.kind is ChangeKind.CONFLICT:
        raise ProvisioningConflictError(f"stream {spec.name}", change.fields)
    return change


# --- consumers ----------------------------------------------------------------------------------


def _observed_consumer(stream: str, config: js_api.ConsumerConfig) -> ConsumerSpec:
    return ConsumerSpec(
        stream=stream,
        durable=config.durable_name or config.name or "",
        filter_subject=config.filter_subject or "",
        ack_wait_seconds=_seconds(config.ack_wait),
        max_deliver=config.max_deliver or -1,
        backoff_seconds=tuple(config.backoff or ()),
        max_ack_pending=config.max_ack_pending or -1,
        max_waiting=config.max_waiting or -1,
        description=config.description or "",
        start_sequence=config.opt_start_seq or 0
        if config.deliver_policy == js_api.DeliverPolicy.BY_START_SEQUENCE
        else 0,
    )


def _comparable_consumer(spec: ConsumerSpec) -> ConsumerSpec:
    """The consumer as the server reports it: a backoff list replaces ack_wait with its first delay."""
    if spec.backoff_seconds:
        return replace(spec, ack_wait_seconds=spec.backoff_seconds[0])
    return spec


def _apply_consumer(spec: ConsumerSpec, base: js_api.ConsumerConfig | None) -> js_api.ConsumerConfig:
    return (base or js_api.ConsumerConfig()).evolve(
        name=spec.durable,
        durable_name=spec.durable,
        filter_subject=spec.filter_subject,
        ack_policy=js_api.AckPolicy.EXPLICIT,
        deliver_policy=js_api.DeliverPolicy.BY_START_SEQUENCE
        if spec.start_sequence
        else js_api.DeliverPolicy.ALL,
        opt_start_seq=spec.start_sequence or None,
        ack_wait=spec.ack_wait_seconds,
        max_deliver=spec.max_deliver,
        backoff=list(spec.backoff_seconds) or None,
        max_ack_pending=spec.max_ack_pending,
        max_waiting=spec.max_waiting,
        description=spec.description or None,
    )


async def ensure_consumer(js: JetStreamContext, spec: ConsumerSpec) -> Change:
    """Create the durable pull consumer, or update it in place (its delivery state is kept)."""
    try:
        observed: js_api.ConsumerConfig | None = (await js.consumer_info(spec.stream, spec.durable)).config
    except NotFoundError:
        observed = None
    change = plan_change(
        _comparable_consumer(spec), _observed_consumer(spec.stream, observed) if observed else None
    )
    if change.kind is ChangeKind.CONFLICT:
        raise ProvisioningConflictError(f"consumer {spec.stream}/{spec.durable}", change.fields)
    if change.kind is not ChangeKind.NONE:
        # Consumer CREATE without an action creates or updates, so one call serves both.
        await js.add_consumer(spec.stream, config=_apply_consumer(spec, observed))
        logger.info(
            "%s consumer %s on stream %s.", change.kind.value.title() + "d", spec.durable, spec.stream
        )
    return change


# --- key-value buckets --------------------------------------------------------------------------


def _observed_key_value(bucket: str, config: js_api.StreamConfig) -> KeyValueSpec:
    return KeyValueSpec(
        bucket=bucket,
        history=config.max_msgs_per_subject,
        ttl_seconds=_seconds(config.max_age),
        replicas=config.num_replicas or 1,
        storage=_storage(config.storage),
        max_bytes=_int_or_unlimited(config.max_bytes),
        max_value_size=_int_or_unlimited(config.max_msg_size),
        placement_cluster=_placement_cluster(config.placement),
        description=config.description or "",
        direct=bool(config.allow_direct),
    )


async def ensure_key_value(js: JetStreamContext, spec: KeyValueSpec) -> Change:
    """Create the KV bucket, or update its history, TTL, size limits, replicas, direct gets and
    description."""
    stream = streams.kv_stream(spec.bucket)
    observed = await _stream_config(js, stream)
    change = plan_change(spec, _observed_key_value(spec.bucket, observed) if observed is not None else None)
    if change.kind is ChangeKind.CREATE:
        await js.create_key_value(
            js_api.KeyValueConfig(
                bucket=spec.bucket,
                description=spec.description or None,
                history=spec.history,
                ttl=spec.ttl_seconds or None,
                max_bytes=spec.max_bytes,
                max_value_size=spec.max_value_size,
                storage=js_api.StorageType(spec.storage.value),
                replicas=spec.replicas,
                placement=_placement(spec.placement_cluster),
                direct=spec.direct,
            )
        )
        logger.info("Created key-value bucket %s.", spec.bucket)
    elif change.kind is ChangeKind.UPDATE:
        assert observed is not None
        await js.update_stream(
            observed.evolve(
                description=spec.description or None,
                max_msgs_per_subject=spec.history,
                max_age=spec.ttl_seconds,
                duplicate_window=_duplicate_window_within(observed, spec.ttl_seconds),
                max_bytes=spec.max_bytes,
                max_msg_size=spec.max_value_size,
                num_replicas=spec.replicas,
                placement=_placement(spec.placement_cluster),
                allow_direct=spec.direct,
            )
        )
        logger.info("Updated key-value bucket %s: %s changed.", spec.bucket, ", ".join(change.fields))
    elif change.kind is ChangeKind.CONFLICT:
        raise ProvisioningConflictError(f"key-value bucket {spec.bucket}", change.fields)
    return change


# --- object stores ------------------------------------------------------------------------------


def _observed_object_store(bucket: str, config: js_api.StreamConfig) -> ObjectStoreSpec:
    return ObjectStoreSpec(
        bucket=bucket,
        ttl_seconds=_seconds(config.max_age),
        replicas=config.num_replicas or 1,
        storage=_storage(config.storage),
        max_bytes=_int_or_unlimited(config.max_bytes),
        placement_cluster=_placement_cluster(config.placement),
        description=config.description or "",
    )


async def ensure_object_store(js: JetStreamContext, spec: ObjectStoreSpec) -> Change:
    """Create the object store bucket, or update its TTL, size limit, replicas and description."""
    stream = streams.object_stream(spec.bucket)
    observed = await _stream_config(js, stream)
    change = plan_change(
        spec, _observed_object_store(spec.bucket, observed) if observed is not None else None
    )
    if change.kind is ChangeKind.CREATE:
        await js.create_object_store(
            spec.bucket,
            config=js_api.ObjectStoreConfig(
                description=spec.description or None,
                ttl=spec.ttl_seconds or None,
                max_bytes=spec.max_bytes,
                storage=js_api.StorageType(spec.storage.value),
                replicas=spec.replicas,
                placement=_placement(spec.placement_cluster),
            ),
        )
        logger.info("Created object store %s.", spec.bucket)
    elif change.kind is ChangeKind.UPDATE:
        assert observed is not None
        await js.update_stream(
            observed.evolve(
                description=spec.description or None,
                max_age=spec.ttl_seconds,
                duplicate_window=_duplicate_window_within(observed, spec.ttl_seconds),
                max_bytes=spec.max_bytes,
                num_replicas=spec.replicas,
                placement=_placement(spec.placement_cluster),
            )
        )
        logger.info("Updated object store %s: %s changed.", spec.bucket, ", ".join(change.fields))
    elif change.kind is ChangeKind.CONFLICT:
        raise ProvisioningConflictError(f"object store {spec.bucket}", change.fields)
    return change


# --- mirrors ------------------------------------------------------------------------------------


def _observed_mirror(config: js_api.StreamConfig) -> MirrorSpec:
    mirror = config.mirror or js_api.StreamSource(name="")
    transforms = mirror.subject_transforms or []
    return MirrorSpec(
        name=config.name or "",
        origin=mirror.name,
        storage=_storage(config.storage),
        replicas=config.num_replicas or 1,
        max_age_seconds=_seconds(config.max_age),
        placement_cluster=_placement_cluster(config.placement),
        subject_transform=(transforms[0].src, transforms[0].dest) if transforms else None,
        direct=bool(config.allow_direct),
        history=config.max_msgs_per_subject if config.max_msgs_per_subject else -1,
        description=config.description or "",
    )


def _apply_mirror(spec: MirrorSpec, base: js_api.StreamConfig | None) -> js_api.StreamConfig:
    transforms = (
        [js_api.SubjectTransform(src=spec.subject_transform[0], dest=spec.subject_transform[1])]
        if spec.subject_transform
        else None
    )
    return (base or js_api.StreamConfig()).evolve(
        name=spec.name,
        mirror=js_api.StreamSource(name=spec.origin, subject_transforms=transforms),
        storage=js_api.StorageType(spec.storage.value),
        num_replicas=spec.replicas,
        max_age=spec.max_age_seconds,
        max_msgs_per_subject=spec.history,
        allow_direct=spec.direct or None,
        mirror_direct=None,
        placement=_placement(spec.placement_cluster),
        description=spec.description or None,
    )


async def ensure_mirror(js: JetStreamContext, spec: MirrorSpec) -> Change:
    """Create the mirror, or update its mutable fields; a different origin is a conflict."""
    observed = await _stream_config(js, spec.name)
    change = plan_change(spec, _observed_mirror(observed) if observed is not None else None)
    if change.kind is ChangeKind.CREATE:
        await js.add_stream(_apply_mirror(spec, None))
        logger.info("Created stream %s mirroring %s.", spec.name, spec.origin)
    elif change.kind is ChangeKind.UPDATE:
        await js.update_stream(_apply_mirror(spec, observed))
        logger.info("Updated mirror %s: %s changed.", spec.name, ", ".join(change.fields))
    elif change.kind is ChangeKind.CONFLICT:
        raise ProvisioningConflictError(f"mirror {spec.name}", change.fields)
    return change


async def delete_stream_if_present(js: JetStreamContext, name: str) -> bool:
    """Delete a stream; False when it was already gone."""
    try:
        await js.delete_stream(name)
    except NotFoundError:
        return False
    return True


async def delete_consumer_if_present(js: JetStreamContext, stream: str, durable: str) -> bool:
    """Delete a consumer; False when it (or its stream) was already gone."""
    try:
        await js.delete_consumer(stream, durable)
    except NotFoundError:
        return False
    return True


# --- what callers use ---------------------------------------------------------------------------


async def ensure_pipeline_resources(
    js: JetStreamContext, ref: PipelineRef, settings: PipelineStreamSettings
) -> ProvisioningReport:
    """The pipeline's job stream, worker consumer and outputs store, created or brought up to date."""
    resources = build_pipeline_resources(ref, settings)
    report = ProvisioningReport()
    report.changes[resources.stream.name] = await ensure_stream(js, resources.stream)
    report.changes[resources.consumer.durable] = await ensure_consumer(js, resources.consumer)
    report.changes[resources.outputs.bucket] = await ensure_object_store(js, resources.outputs)
    return report


async def delete_pipeline_resources(
    js: JetStreamContext,
    ref: PipelineRef,
    region: str,
    *,
    backup: str | None = None,
    keep_outputs: bool = False,
) -> None:
    """Delete the pipeline's job stream in `region` (and with it the consumer), the mirror of it
    in `backup`, and, unless kept, its outputs.

    Absent resources are fine: deleting twice is not an error.
    """
    doomed = [streams.job_stream(ref, region)]
    if backup is not None:
        doomed.append(streams.job_mirror_stream(ref, region, backup))
    if not keep_outputs:
        doomed.append(streams.object_stream(streams.outputs_bucket(ref, region)))
    for name in doomed:
        if await delete_stream_if_present(js, name):
            logger.info("Deleted stream %s of pipeline %s.", name, ref)


async def ensure_region_buckets(js: JetStreamContext, settings: RegionBucketSettings) -> ProvisioningReport:
    """The region's shared KV buckets and the sources object store, created or brought up to date."""
    buckets = build_region_buckets(settings)
    report = ProvisioningReport()
    for kv in buckets.key_values:
        report.changes[kv.bucket] = await ensure_key_value(js, kv)
    for store in buckets.object_stores:
        report.changes[store.bucket] = await ensure_object_store(js, store)
    for mirror in buckets.mirrors:
        report.changes[mirror.name] = await ensure_mirror(js, mirror)
    return report
