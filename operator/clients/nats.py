"""The operator's NATS side: one connection per region, JetStream provisioning, backlog, probes, and
the autoscaler's reads (`read_queue`).

Connections are opened on first use and reused. A connection that gives up reconnecting is closed
and dropped; the next call opens a new one, so a region whose NATS comes back heals on the next
resync without an operator restart. Every call has a short timeout: an unreachable region must
make its pipeline `Ready=False` within one pass, not hang the reconcile loop.

The provisioning itself (`ensure_pipeline_resources`, `ensure_region_buckets`,
`delete_pipeline_resources`) lives in `clients.jetstream`; this module adds the connections, the
region-bucket cadence and the reads the reconciler and the prober need.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from pydantic import ValidationError

from pixelmesh.api import streams
from pixelmesh.api.messages import PipelineRef, WorkerReport
from pixelmesh.api.resources import SecretKeyRef
from pixelmesh.api.routing import RoutingEntry
from pixelmesh.operator.autoscaling.measure import QueueReading, WorkerTotals
from pixelmesh.operator.clients import jetstream as provisioning
from pixelmesh.operator.errors import JetStreamRefusedError, RegionUnreachableError
from pixelmesh.operator.jetstream import (
    ChangeKind,
    ObjectStoreSpec,
    PipelineStreamSettings,
    RegionBucketSettings,
    Storage,
    build_drain_consumer,
    build_job_mirror,
)
from pixelmesh.operator.status import ProbeResult
from pixelmesh.operator.target import GeoPlacement, RegionPlacement

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
CredentialsLoader = Callable[[SecretKeyRef], Awaitable[bytes]]

CONNECT_TIMEOUT = 2.0
REQUEST_TIMEOUT = 3.0
REGION_BUCKETS_EVERY = 60.0
"""Seconds between checks of a region's shared buckets (every pipeline pass would repeat them)."""

UNREACHABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncio.TimeoutError,
    nats.errors.Error,
)


@dataclass(frozen=True, slots=True)
class _Endpoint:
    urls: tuple[str, ...]
    credentials: SecretKeyRef | None


JETSTREAM_ERRORS: tuple[type[BaseException], ...] = (*UNREACHABLE_ERRORS, nats.js.errors.Error)
PROBE_ERRORS: tuple[type[BaseException], ...] = (*UNREACHABLE_ERRORS, TimeoutError)
BACKLOG_ERRORS: tuple[type[BaseException], ...] = (*JETSTREAM_ERRORS, RegionUnreachableError)


class RegionConnections:
    """NATS connections by region."""

    def __init__(
        self, *, credentials: CredentialsLoader | None = None, name: str = "pixelmesh-operator"
    ) -> None:
        self._credentials_loader = credentials
        self._name = name
        self._clients: dict[str, tuple[_Endpoint, NatsClient]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._credentials_dir: Path | None = None

    async def client(self, placement: RegionPlacement) -> NatsClient:
        """The region's connection, (re)opened when needed."""
        endpoint = _Endpoint(placement.nats_urls, placement.nats_credentials)
        lock = self._locks.setdefault(placement.region, asyncio.Lock())
        async with lock:
            known = self._clients.get(placement.region)
            if known is not None:
                known_endpoint, nc = known
                if known_endpoint == endpoint and nc.is_connected:
                    return nc
                del self._clients[placement.region]
                await _close_quietly(nc)
            nc = await self._connect(placement.region, endpoint)
            self._clients[placement.region] = (endpoint, nc)
            return nc

    async def jetstream(self, placement: RegionPlacement) -> JetStreamContext:
        return (await self.client(placement)).jetstream(timeout=REQUEST_TIMEOUT)

    async def _connect(self, region: str, endpoint: _Endpoint) -> NatsClient:
        options: dict[str, object] = {}
        if endpoint.credentials is not None:
            options["user_credentials"] = str(await self._credentials_file(region, endpoint.credentials))

        async def on_error(error: Exception) -> None:
            logger.debug("NATS connection of region %s reported: %r", region, error)

        try:
            return await nats.connect(
                servers=list(endpoint.urls),
                name=self._name,
                connect_timeout=CONNECT_TIMEOUT,
                allow_reconnect=True,
                max_reconnect_attempts=2,
                reconnect_time_wait=0.5,
                error_cb=on_error,
                **options,
            )
        except UNREACHABLE_ERRORS as error:
            urls = ", ".join(endpoint.urls)
            raise RegionUnreachableError(
                f"NATS of region {region} at {urls} is unreachable: {error!r}"
            ) from error

    async def _credentials_file(self, region: str, ref: SecretKeyRef) -> Path:
        if self._credentials_loader is None:
            raise RegionUnreachableError(f"region {region} needs NATS credentials but none can be read here")
        data = await self._credentials_loader(ref)
        if self._credentials_dir is None:
            self._credentials_dir = Path(tempfile.mkdtemp(prefix="pixelmesh-nats-"))
        path = self._credentials_dir / f"{region}.creds"
        path.write_bytes(data)
        path.chmod(0o600)
        return path

    async def close(self) -> None:
        clients, self._clients = self._clients, {}
        for _, nc in clients.values():
            await _close_quietly(nc)


async def _close_quietly(nc: NatsClient) -> None:
    with contextlib.suppress(Exception):
        await nc.close()


class NatsJetStream:
    """What the reconciler asks of a region's JetStream."""

    def __init__(
        self, connections: RegionConnections, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._connections = connections
        self._clock = clock
        self._buckets_checked: dict[tuple[str, RegionBucketSettings], float] = {}
        self._ack_floors: dict[tuple[PipelineRef, str], int] = {}
        """(pipeline, region) -> the last acknowledgement floor read of its workers' consumer."""
        self._drains: dict[tuple[PipelineRef, str], set[str]] = {}
        """(pipeline, backup region) -> origins drained there: their backlog is the backup's too."""

    async def _js(self, placement: RegionPlacement) -> JetStreamContext:
        return await self._connections.jetstream(placement)

    async def ensure_region(
        self, placement: RegionPlacement, settings: RegionBucketSettings
    ) -> dict[str, str]:
        """The region's shared buckets (at most once a minute per region); resource -> change made."""
        key = (placement.region, settings)
        checked = self._buckets_checked.get(key)
        if checked is not None and self._clock() - checked < REGION_BUCKETS_EVERY:
            return {}
        js = await self._js(placement)
        report = await _unreachable_as(placement, provisioning.ensure_region_buckets(js, settings))
        self._buckets_checked[key] = self._clock()
        return _changes(report)

    async def ensure_pipeline(
        self, placement: RegionPlacement, ref: PipelineRef, settings: PipelineStreamSettings
    ) -> dict[str, str]:
        """The pipeline's stream, consumer and outputs store; resource -> change made."""
        js = await self._js(placement)
        report = await _unreachable_as(placement, provisioning.ensure_pipeline_resources(js, ref, settings))
        return _changes(report)

    async def ensure_job_mirror(
        self, backup: RegionPlacement, ref: PipelineRef, origin: str, settings: PipelineStreamSettings
    ) -> dict[str, str]:
        """The mirror of `origin`'s job stream in its backup region; resource -> change made."""
        js = await self._js(backup)
        spec = build_job_mirror(ref, origin, settings)
        change = await _unreachable_as(backup, provisioning.ensure_mirror(js, spec))
        return {} if change.kind is ChangeKind.NONE else {spec.name: change.kind.value}

    async def open_drain(
        self, backup: RegionPlacement, ref: PipelineRef, origin: str, settings: PipelineStreamSettings
    ) -> bool:
        """Make sure the drain consumer of `origin`'s mirror exists in `backup`; True if it was created.

        It starts after the last acknowledgement floor read of `origin`'s workers (a mirror keeps
        its origin's sequence numbers): jobs below it are done, and the ones above it that were
        done too are skipped by their completion records. An existing drain is left as it is.
        """
        js = await self._js(backup)
        self._drains.setdefault((ref, backup.region), set()).add(origin)
        mirror = streams.job_mirror_stream(ref, origin, backup.region)
        try:
            await js.consumer_info(mirror, streams.drain_consumer(ref, origin))
        except nats.js.errors.NotFoundError:
            pass
        except JETSTREAM_ERRORS as error:
            raise RegionUnreachableError(
                f"JetStream of region {backup.region} did not answer: {error!r}"
            ) from error
        else:
            return False
        floor = self._ack_floors.get((ref, origin), 0)
        spec = build_drain_consumer(ref, origin, settings, start_sequence=floor + 1 if floor else 0)
        await _unreachable_as(backup, provisioning.ensure_consumer(js, spec))
        logger.info(
            "Opened the drain of region %s in %s from sequence %d of %s.",
            origin,
            backup.region,
            floor + 1,
            mirror,
        )
        return True

    async def close_drain(self, backup: RegionPlacement, ref: PipelineRef, origin: str) -> bool:
        """Delete the drain consumer of `origin`'s mirror in `backup`; True if there was one."""
        js = await self._js(backup)
        self._drains.get((ref, backup.region), set()).discard(origin)
        mirror = streams.job_mirror_stream(ref, origin, backup.region)
        return await _unreachable_as(
            backup, provisioning.delete_consumer_if_present(js, mirror, streams.drain_consumer(ref, origin))
        )

    async def mirror_lag(self, backup: RegionPlacement, ref: PipelineRef, origin: str) -> int | None:
        """Messages of `origin`'s job stream its mirror in `backup` has not copied yet; None if unknown."""
        try:
            js = await self._js(backup)
            info = await js.stream_info(streams.job_mirror_stream(ref, origin, backup.region))
        except BACKLOG_ERRORS:
            return None
        return int(info.mirror.lag or 0) if info.mirror is not None else None

    async def worker_totals(
        self, placement: RegionPlacement, ref: PipelineRef
    ) -> tuple[WorkerTotals, ...] | None:
        """The latest totals of each worker of `ref` in the region; None when they cannot be read."""
        try:
            js = await self._js(placement)
            return await asyncio.wait_for(_worker_totals(js, ref, placement.region), REQUEST_TIMEOUT)
        except BACKLOG_ERRORS:
            return None

    async def ensure_geo_sources(self, home: RegionPlacement, geo: GeoPlacement) -> dict[str, str]:
        """The sources store of `geo` pipelines, on the cross-region cluster (any region reaches it)."""
        js = await self._js(home)
        spec = ObjectStoreSpec(
            bucket=streams.sources_bucket(streams.GEO),
            ttl_seconds=RegionBucketSettings().sources_ttl_seconds,
            replicas=geo.replicas,
            storage=Storage.FILE,
            placement_cluster=geo.cluster,
            description="Sources of durability: geo pipelines, one replica per region.",
        )
        change = await _unreachable_as(home, provisioning.ensure_object_store(js, spec))
        return {} if change.kind is ChangeKind.NONE else {spec.bucket: change.kind.value}

    async def publish_routing(self, home: RegionPlacement, entry: RoutingEntry) -> None:
        """Write a pipeline's routing entry in the operator's own region; the others mirror it."""
        js = await self._js(home)
        try:
            bucket = await js.key_value(streams.routing_bucket(home.region))
        except nats.js.errors.BucketNotFoundError:
            # The operator's own region runs no pipeline and is no pool: it still holds the table.
            settings = RegionBucketSettings(region=home.region, placement_cluster=home.placement_cluster)
            await _unreachable_as(home, provisioning.ensure_region_buckets(js, settings))
            bucket = await _unreachable_as(home, js.key_value(streams.routing_bucket(home.region)))
        payload = entry.model_dump_json(by_alias=True, exclude_none=True).encode()
        await _unreachable_as(home, bucket.put(streams.routing_key(entry.pipeline), payload))
        logger.info(
            "Routing of ImagePipeline %s is now generation %d: %s.",
            entry.pipeline,
            entry.generation,
            ", ".join(f"{w.region}={w.weight}%" for w in entry.regions),
        )

    async def backlog(self, placement: RegionPlacement, ref: PipelineRef) -> int | None:
        """Pending + ack pending of the workers' consumer, from the stream leader; None if unknown."""
        try:
            js = await self._js(placement)
            return await self._consumer_backlog(js, ref, placement.region) + await self._drain_backlog(
                js, ref, placement.region
            )
        except BACKLOG_ERRORS:
            return None

    async def _consumer_backlog(self, js: JetStreamContext, ref: PipelineRef, region: str) -> int:
        """Jobs not yet done: pending plus ack pending of the workers' consumer. Its acknowledgement
        floor is kept: a drain after the region fails starts above it."""
        info = await js.consumer_info(streams.job_stream(ref, region), streams.worker_consumer(ref))
        if info.ack_floor is not None and info.ack_floor.stream_seq:
            self._ack_floors[(ref, region)] = int(info.ack_floor.stream_seq)
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    async def _drain_backlog(self, js: JetStreamContext, ref: PipelineRef, region: str) -> int:
        """Jobs of failed regions this region drains: its workers (and the autoscaler) take them on."""
        total = 0
        for origin in sorted(self._drains.get((ref, region), ())):
            info = await js.consumer_info(
                streams.job_mirror_stream(ref, origin, region), streams.drain_consumer(ref, origin)
            )
            total += int(info.num_pending or 0) + int(info.num_ack_pending or 0)
        return total

    async def read_queue(self, placement: RegionPlacement, ref: PipelineRef) -> QueueReading:
        """What the autoscaler reads of a pipeline in a region; None for each part that failed.

        `consumer_info` and `stream_info` are JetStream API requests, answered by the consumer's and
        the stream's leader: never a follower's stale view (KEDA's scaler reads the monitoring
        endpoint of whichever server it reaches).
        """
        try:
            js = await self._js(placement)
        except RegionUnreachableError:
            return QueueReading(backlog=None)
        backlog = last_sequence = None
        workers: tuple[WorkerTotals, ...] | None = None
        try:
            backlog = await self._consumer_backlog(js, ref, placement.region)
            backlog += await self._drain_backlog(js, ref, placement.region)
        except BACKLOG_ERRORS as error:
            logger.debug(
                "Reading the backlog of ImagePipeline %s in region %s failed: %r",
                ref,
                placement.region,
                error,
            )
        try:
            stream = await js.stream_info(streams.job_stream(ref, placement.region))
            last_sequence = int(stream.state.last_seq or 0)
        except BACKLOG_ERRORS as error:
            logger.debug(
                "Reading the stream of ImagePipeline %s in region %s failed: %r", ref, placement.region, error
            )
        try:
            workers = await asyncio.wait_for(_worker_totals(js, ref, placement.region), REQUEST_TIMEOUT)
        except BACKLOG_ERRORS as error:
            logger.debug(
                "Reading the worker reports of ImagePipeline %s in region %s failed: %r",
                ref,
                placement.region,
                error,
            )
        return QueueReading(backlog=backlog, last_sequence=last_sequence, workers=workers)

    async def delete_pipeline(self, placement: RegionPlacement, ref: PipelineRef) -> None:
        js = await self._js(placement)
        await _unreachable_as(placement, provisioning.delete_pipeline_resources(js, ref, placement.region))

    async def probe(self, placement: RegionPlacement, timeout: float = REQUEST_TIMEOUT) -> ProbeResult:  # noqa: ASYNC109 - per request, from the pool's probeTimeout
        """Round trip and JetStream availability of the region's NATS, each within `timeout`."""
        try:
            nc = await self._connections.client(placement)
        except RegionUnreachableError as error:
            return ProbeResult(nats_reachable=False, jetstream_available=False, message=str(error))
        started = time.monotonic()
        try:
            await asyncio.wait_for(nc.flush(), timeout)
        except PROBE_ERRORS as error:
            message = f"NATS of region {placement.region} did not answer a ping: {error!r}"
            return ProbeResult(nats_reachable=False, jetstream_available=False, message=message)
        round_trip = time.monotonic() - started
        try:
            # A stream of the region itself, answered by its leader there: account info needs the
            # supercluster's meta leader, which is re-elected when another region dies, and that
            # is no reason to fail this one.
            js = nc.jetstream(timeout=timeout)
            try:
                await js.stream_info(streams.kv_stream(streams.completions_bucket(placement.region)))
            except nats.js.errors.NotFoundError:
                await js.account_info()  # a region not provisioned yet
        except JETSTREAM_ERRORS as error:
            message = f"JetStream of region {placement.region} did not answer: {error!r}"
            return ProbeResult(
                nats_reachable=True, jetstream_available=False, round_trip_seconds=round_trip, message=message
            )
        return ProbeResult(nats_reachable=True, jetstream_available=True, round_trip_seconds=round_trip)


async def _worker_totals(js: JetStreamContext, ref: PipelineRef, region: str) -> tuple[WorkerTotals, ...]:
    """The latest report of each worker of `ref` in `region`, from the worker-stats bucket.

    One watch on the pipeline's keys, last value per key: a single round of messages whatever the
    number of workers. A report that does not parse (another version's) is skipped.
    """
    bucket = await js.key_value(streams.worker_stats_bucket(region))
    watcher = await bucket.watch(streams.worker_stats_filter(ref), ignore_deletes=True)
    found: list[WorkerTotals] = []
    try:
        async for entry in watcher:
            if entry is None:  # the watcher's marker: every current value has been delivered
                break
            try:
                report = WorkerReport.model_validate_json(entry.value or b"")
            except ValidationError:
                continue
            if report.region == region:
                found.append(
                    WorkerTotals(
                        report.worker,
                        report.served,
                        report.busy_seconds,
                        report.failed,
                        tuple(report.latency_counts),
                    )
                )
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]
    return tuple(found)


async def _unreachable_as(placement: RegionPlacement, call: Awaitable[_T]) -> _T:
    """Run a provisioning call; a refusal by JetStream and an unreachable server raise different errors."""
    try:
        return await call
    except provisioning.ProvisioningConflictError as error:
        raise JetStreamRefusedError(f"Region {placement.region}: {error}") from error
    except nats.js.errors.APIError as error:
        raise JetStreamRefusedError(
            f"JetStream of region {placement.region} refused a change: {error.description or error!r}"
        ) from error
    except UNREACHABLE_ERRORS as error:
        raise RegionUnreachableError(
            f"JetStream of region {placement.region} did not answer: {error!r}"
        ) from error


def _changes(report: provisioning.ProvisioningReport) -> dict[str, str]:
    return {
        name: change.kind.value
        for name, change in report.changes.items()
        if change.kind is not ChangeKind.NONE
    }
