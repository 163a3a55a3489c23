"""What the gateway does with NATS: route, store sources, publish jobs, wait, look jobs up, fetch outputs.

The handlers parse HTTP and call this; this never sees a request. The order of operations is the
contract with the rest of the platform:

- A source goes into the chosen region's object store under its sha256 (skipped when that key is
  already stored: identical uploads are kept once).
- A job is published with `Nats-Msg-Id = job id`; only the PubAck makes it accepted (durable), and
  only then is the accepted record written, so `GET /v1/jobs/{id}` can say "pending". A repeat of
  the same id inside the stream's duplicate window is collapsed by JetStream.
- A caller that waits subscribes to the job's result subject *before* publishing, and looks at the
  completion record after subscribing: a result can neither slip between the two nor be missed
  because the job finished earlier (a repeated idempotency key, a cached render).

Routing tables and backlogs come from `BackgroundValues`: the request path never waits on a
JetStream API call for them.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import ObjectInfo
from nats.js.errors import (
    APIError,
    BucketNotFoundError,
    KeyNotFoundError,
    NoStreamResponseError,
    NotFoundError,
)
from pydantic import ValidationError

from pixelmesh.api import streams
from pixelmesh.api.http import JobView, ProblemCode
from pixelmesh.api.messages import (
    DeadLetter,
    JobMessage,
    JobResult,
    JobStatus,
    OutputRef,
    PipelineRef,
)
from pixelmesh.api.pipeline import CONCRETE_EXTENSIONS, CONTENT_TYPES, OutputType
from pixelmesh.api.routing import RoutingEntry, choose_region
from pixelmesh.gateway.cache import BackgroundValues
from pixelmesh.gateway.catalog import CatalogEntry, PipelineCatalog
from pixelmesh.gateway.config import GatewayConfig
from pixelmesh.gateway.metrics import GatewayMetrics
from pixelmesh.gateway.problems import ProblemError, code_of
from pixelmesh.gateway.regions import RegionLink, Regions
from pixelmesh.gateway.views import (
    sha256_hex_of_digest,
    view_of_accepted,
    view_of_dead_letter,
    view_of_result,
)
from pixelmesh.objectstore import ObjectCorruptError, put_object, read_object, read_object_info
from pixelmesh.objectstore import ObjectNotFoundError as StoredObjectMissingError
from pixelmesh.records import CompletionLookup

logger = logging.getLogger(__name__)

OUTPUT_READ_TIMEOUT = 30.0
"""Longest a download may take to read an output from its object store."""
FIRST_ROUTING_LOAD_SECONDS = 2.0
"""Longest the first job of a pipeline waits for its routing entry (one KV get, normally ~1 ms)."""

JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_=-]{0,127}$")


def new_job_id() -> str:
    return uuid.uuid4().hex


def is_job_id(text: str) -> bool:
    return JOB_ID.fullmatch(text) is not None


def render_job_id(ref: PipelineRef, generation: int, source_key: str, variant: str, fmt: OutputType) -> str:
    """The job id of an on-the-fly render: the same output always gets the same id (JetStream dedup)."""
    seed = f"{ref}/{generation}/{source_key}/{variant}/{fmt.value}".encode()
    return "r-" + hashlib.sha256(seed).hexdigest()


@dataclass(frozen=True, slots=True)
class Route:
    region: RegionLink
    generation: int
    source_bucket: str = ""
    """Where sources of this pipeline go, when not the region's own store (`durability: geo`)."""

    @property
    def sources(self) -> str:
        return self.source_bucket or streams.sources_bucket(self.region.name)


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job found in a region's records."""

    view: JobView
    region: RegionLink
    result: JobResult | None = None


@dataclass(frozen=True, slots=True)
class StoredObject:
    """An output located in a region's store, not yet read."""

    region: RegionLink
    bucket: str
    key: str
    sha256: str
    content_type: str
    size: int


def _unavailable(region: RegionLink, what: str, error: Exception) -> ProblemError:
    logger.warning("Region %s could not %s: %s", region.name, what, error)
    return ProblemError(ProblemCode.UNAVAILABLE, f"region {region.name} could not {what}")


class JobService:
    def __init__(
        self,
        config: GatewayConfig,
        catalog: PipelineCatalog,
        regions: Regions,
        metrics: GatewayMetrics,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.catalog = catalog
        self.regions = regions
        self.metrics = metrics
        self._rng = rng or random.Random()
        self._lookups: dict[str, CompletionLookup] = {}
        self.routing: BackgroundValues[PipelineRef, RoutingEntry | None] = BackgroundValues(
            load=self._load_routing,
            initial=lambda _ref: None,
            max_age=config.routing_refresh_seconds,
            description="the routing table",
        )
        self.backlog: BackgroundValues[tuple[str, PipelineRef], int] = BackgroundValues(
            load=self._load_backlog,
            initial=lambda _key: 0,
            max_age=config.backlog_refresh_seconds,
            description="the backlog",
        )

    async def close(self) -> None:
        await self.routing.close()
        await self.backlog.close()

    # Pipelines and routing

    async def pipeline(self, ref: PipelineRef) -> CatalogEntry:
        entry = await self.catalog.get(ref)
        if entry is None:
            raise ProblemError(ProblemCode.UNKNOWN_PIPELINE, f"there is no pipeline {ref}")
        return entry

    async def route(self, entry: CatalogEntry, home: str | None = None) -> Route:
        """The region a new job of `entry` goes to, and the pipeline generation its workers run.

        `home` is the caller's region when the request says so (`X-PixelMesh-Home-Region`; empty:
        a caller with no region, routed by weight alone); None: this gateway's own region.
        The first job of a pipeline waits for its routing entry: sent by default to this
        gateway's region, it would be refused there when the pipeline does not run in it.
        """
        table = await self.routing.loaded(entry.ref, FIRST_ROUTING_LOAD_SECONDS)
        if home is None or (table is None and not home):
            # No table yet gives no weights to choose by: this gateway's own region it is.
            home = self.regions.home
        name = choose_region(table, home, self._rng, reachable=self.regions.connected_names())
        if name is None:
            raise ProblemError(
                ProblemCode.NO_REGION,
                f"no reachable region carries traffic for pipeline {entry.ref}",
                retry_after=self.config.retry_after_seconds,
            )
        decision = "default" if table is None else ("home" if name == home else "weighted")
        self.metrics.routing_decisions.labels(str(entry.ref), name, decision).inc()
        generation = entry.generation
        if table is not None and table.pipeline_generation is not None:
            generation = table.pipeline_generation
        return Route(
            region=self.regions.get(name),
            generation=generation,
            source_bucket=table.source_bucket if table is not None else "",
        )

    async def _load_routing(self, ref: PipelineRef) -> RoutingEntry | None:
        # The routing bucket is replicated to every region: the first reachable one will do.
        links = self.regions.home_first()
        if not links:
            raise ConnectionError("no region is reachable")
        kv = await links[0].kv(streams.routing_bucket(links[0].name))
        try:
            entry = await kv.get(streams.routing_key(ref))
        except KeyNotFoundError:
            return None
        return RoutingEntry.model_validate_json(entry.value) if entry.value is not None else None

    def check_backlog(self, entry: CatalogEntry, region: RegionLink) -> None:
        backlog = self.backlog.get((region.name, entry.ref))
        if backlog >= self.config.backlog_limit:
            raise ProblemError(
                ProblemCode.BACKLOG_FULL,
                f"pipeline {entry.ref} has {backlog} jobs waiting in region {region.name}",
                retry_after=self.config.retry_after_seconds,
            )

    async def _load_backlog(self, key: tuple[str, PipelineRef]) -> int:
        region_name, ref = key
        link = self.regions.get(region_name)
        info = await link.js.consumer_info(streams.job_stream(ref, region_name), streams.worker_consumer(ref))
        backlog = int(info.num_pending or 0) + int(info.num_ack_pending or 0)
        self.metrics.backlog.labels(str(ref), region_name).set(backlog)
        return backlog

    # Sources

    async def store_source(self, route: Route, data: bytes) -> str:
        """Keep `data` in the route's source store under its sha256 (once); the key."""
        key = hashlib.sha256(data).hexdigest()
        region = route.region
        try:
            try:
                await _object_info(region, route.sources, key)
            except StoredObjectMissingError:
                # Chunks published together: nats-py's `put` waits for each chunk's ack in turn.
                await put_object(region.js, bucket=route.sources, name=key, data=data)
                self.metrics.sources_stored.labels(region.name).inc()
        except (NatsError, APIError, OSError) as error:
            raise _unavailable(region, "store the source", error) from error
        return key

    async def source_size(self, route: Route, key: str) -> int | None:
        """The stored source's size, or None when the route's source store does not hold it."""
        region = route.region
        try:
            info = await _object_info(region, route.sources, key)
        except StoredObjectMissingError:
            return None
        except (NatsError, APIError, OSError) as error:
            raise _unavailable(region, "look the source up", error) from error
        return info.size or 0

    # Jobs

    async def submit(
        self,
        *,
        entry: CatalogEntry,
        route: Route,
        source_key: str,
        source_size: int,
        job_id: str,
        variants: Sequence[str] | None,
        formats: dict[str, OutputType],
        wait: float,
        deadline: datetime | None = None,
    ) -> JobView:
        """Publish the job; its view once accepted, or once finished when `wait` > 0 and it finishes in time.

        A failed job raises the ProblemError of its failure reason.
        """
        region = route.region
        job = JobMessage(
            job_id=job_id,
            pipeline=entry.ref,
            generation=route.generation,
            source_key=source_key,
            source_size=source_size,
            variants=list(variants) if variants else None,
            formats=formats,
            deadline=deadline,
            region=region.name,
            source_bucket=route.source_bucket,
        )
        waiter = await self._subscribe_result(region, entry.ref, job_id) if wait > 0 else None
        try:
            duplicate = await self._publish(region, job)
            if waiter is None:
                return view_of_accepted(job, region.name)
            if duplicate:
                # The first submission may have finished before we subscribed.
                done = await self._completion(region, job_id)
                if done is not None:
                    return self._finished(done, region)
            result = await self._next_result(waiter, wait)
        finally:
            if waiter is not None:
                await _unsubscribe(waiter)
        if result is None:
            self.metrics.wait_outcomes.labels("timeout").inc()
            return view_of_accepted(job, region.name)
        return self._finished(result, region)

    def _finished(self, result: JobResult, region: RegionLink) -> JobView:
        self.metrics.wait_outcomes.labels(result.status.value).inc()
        _raise_if_failed(result)
        return view_of_result(result, region.name)

    async def _publish(self, region: RegionLink, job: JobMessage) -> bool:
        """Publish and wait for the PubAck; whether JetStream saw the id before. Then record it accepted."""
        payload = job.model_dump_json(by_alias=True, exclude_none=True).encode()
        try:
            ack = await region.js.publish(
                streams.job_subject(job.pipeline, region.name), payload, headers={"Nats-Msg-Id": job.job_id}
            )
        except NoStreamResponseError as error:
            raise _unavailable(
                region, f"accept jobs of pipeline {job.pipeline} (no job stream)", error
            ) from error
        except APIError as error:
            if "maximum" in str(error).lower():
                raise ProblemError(
                    ProblemCode.BACKLOG_FULL,
                    f"the job stream of pipeline {job.pipeline} is full in region {region.name}",
                    retry_after=self.config.retry_after_seconds,
                ) from error
            raise _unavailable(region, "accept the job", error) from error
        except (NatsError, OSError) as error:
            raise _unavailable(region, "accept the job", error) from error
        labels = (str(job.pipeline), region.name)
        if ack.duplicate:
            self.metrics.jobs_duplicate.labels(*labels).inc()
            logger.info(
                "Job %s of pipeline %s was already accepted in region %s.",
                job.job_id,
                job.pipeline,
                region.name,
            )
            return True
        self.metrics.jobs_accepted.labels(*labels).inc()
        try:
            accepted = await region.kv(streams.accepted_bucket(region.name))
            await accepted.put(job.job_id, payload)
        except (NatsError, APIError, OSError) as error:
            # The job is durable and will run; only its "pending" status is lost until it finishes.
            logger.warning(
                "Job %s was accepted but its accepted record was not written: %s", job.job_id, error
            )
        logger.info(
            "Accepted job %s of pipeline %s in region %s.",
            job.job_id,
            job.pipeline,
            region.name,
            extra={"job_id": job.job_id, "pipeline": str(job.pipeline), "region": region.name},
        )
        return False

    async def _subscribe_result(self, region: RegionLink, ref: PipelineRef, job_id: str) -> Subscription:
        if region.nc is None:
            raise ProblemError(ProblemCode.UNAVAILABLE, f"region {region.name} is not reachable right now")
        try:
            return await region.nc.subscribe(streams.result_subject(ref, job_id))
        except NatsError as error:
            raise _unavailable(region, "subscribe to results", error) from error

    async def _next_result(self, subscription: Subscription, seconds: float) -> JobResult | None:
        loop_deadline = time.monotonic() + seconds
        while (remaining := loop_deadline - time.monotonic()) > 0:
            try:
                message = await subscription.next_msg(timeout=remaining)
            except NatsTimeoutError:
                return None
            except NatsError as error:
                logger.warning("Waiting on %s ended early: %s", subscription.subject, error)
                return None
            try:
                return JobResult.model_validate_json(message.data)
            except ValidationError as error:
                logger.warning("Ignoring a malformed result on %s: %s", subscription.subject, error)
        return None

    async def _completion(self, region: RegionLink, job_id: str) -> JobResult | None:
        lookup = self._lookups.setdefault(region.name, CompletionLookup(region.name))
        try:
            raw = await lookup.find(region.js, job_id)
        except (NatsError, APIError, OSError) as error:
            raise _unavailable(region, "read the completion records", error) from error
        return JobResult.model_validate_json(raw) if raw is not None else None

    async def _kv_get(self, region: RegionLink, bucket: str, key: str) -> bytes | None:
        try:
            kv = await region.kv(bucket)
            entry = await kv.get(key)
        except KeyNotFoundError:
            return None
        except BucketNotFoundError as error:
            raise _unavailable(region, f"read bucket {bucket} (missing)", error) from error
        except (NatsError, APIError, OSError) as error:
            raise _unavailable(region, f"read bucket {bucket}", error) from error
        return entry.value

    async def find(self, job_id: str) -> JobRecord | None:
        """The job's most final record in any reachable region (home first), or None."""
        if not is_job_id(job_id):
            return None
        links = self.regions.home_first()
        if not links:
            raise ProblemError(
                ProblemCode.UNAVAILABLE, "no region is reachable", retry_after=self.config.retry_after_seconds
            )
        pending: JobRecord | None = None
        for link in links:
            try:
                final, accepted = await self._records_in(link, job_id, accepted_too=pending is None)
            except ProblemError:
                if link.connected:
                    raise
                continue  # it went away during the lookup: as if it had not been reachable before
            if final is not None:
                return final
            pending = pending or accepted
        return pending

    async def _records_in(
        self, link: RegionLink, job_id: str, *, accepted_too: bool
    ) -> tuple[JobRecord | None, JobRecord | None]:
        """The job's final record in one region (done or dead-lettered), else its accepted record
        when `accepted_too`."""
        if (result := await self._completion(link, job_id)) is not None:
            return JobRecord(view=view_of_result(result, link.name), region=link, result=result), None
        letter = await self._kv_get(link, streams.dead_letters_bucket(link.name), job_id)
        failed = view_of_dead_letter(DeadLetter.model_validate_json(letter), link.name) if letter else None
        if failed is not None:
            return JobRecord(view=failed, region=link), None
        if not accepted_too:
            return None, None
        raw = await self._kv_get(link, streams.accepted_bucket(link.name), job_id)
        if raw is None:
            return None, None
        view = view_of_accepted(JobMessage.model_validate_json(raw), link.name)
        return None, JobRecord(view=view, region=link)

    async def status(self, job_id: str, wait: float) -> JobView:
        """The job's view; a pending job is waited on for up to `wait` seconds."""
        record = await self.find(job_id)
        if record is None:
            raise ProblemError(ProblemCode.NOT_FOUND, f"there is no job {job_id}")
        return await self.wait_on(record, wait)

    async def wait_on(self, record: JobRecord, wait: float) -> JobView:
        """The view of a job already found; a pending one is waited on for up to `wait` seconds."""
        if record.view.done or wait <= 0:
            return record.view
        region, job_id = record.region, record.view.job_id
        waiter = await self._subscribe_result(region, record.view.pipeline, job_id)
        try:
            done = await self._completion(region, job_id)
            result = done or await self._next_result(waiter, wait)
        finally:
            await _unsubscribe(waiter)
        if result is None:
            return record.view
        return view_of_result(result, region.name)

    async def output(self, job_id: str, variant: str) -> StoredObject:
        record = await self.find(job_id)
        if record is None:
            raise ProblemError(ProblemCode.NOT_FOUND, f"there is no job {job_id}")
        view = record.view
        if view.error is not None:
            raise ProblemError(view.error.code, view.error.message, job_id=job_id)
        if record.result is None:
            raise ProblemError(ProblemCode.NOT_FOUND, f"job {job_id} has not finished yet", job_id=job_id)
        output = _output_of(record.result, variant, ProblemCode.UNKNOWN_VARIANT)
        return _stored(record.region, record.result.pipeline, output)

    async def read(self, stored: StoredObject) -> bytes:
        try:
            # Not nats-py's `get`: its flow control stalls large objects for 0.25 s at a time.
            data = await read_object(
                stored.region.js,
                stream=streams.object_stream(stored.bucket),
                bucket=stored.bucket,
                name=stored.key,
                timeout=OUTPUT_READ_TIMEOUT,
            )
        except (StoredObjectMissingError, NotFoundError) as error:
            raise ProblemError(ProblemCode.NOT_FOUND, f"output {stored.key} is no longer stored") from error
        except (NatsError, APIError, OSError, ObjectCorruptError) as error:
            raise _unavailable(stored.region, "read the output", error) from error
        self.metrics.download_bytes.inc(len(data))
        return data

    # On-the-fly renders (signed URLs)

    async def render(
        self, entry: CatalogEntry, source_key: str, variant: str, fmt: OutputType
    ) -> StoredObject:
        """The stored output for (source, variant, format): from the store if present, else rendered now."""
        route = await self.route(entry)
        region = route.region
        bucket = streams.outputs_bucket(entry.ref, region.name)
        key = streams.output_key(entry.ref, route.generation, source_key, variant, CONCRETE_EXTENSIONS[fmt])
        stored = await self._stored_object(region, bucket, key, fmt)
        if stored is not None:
            self.metrics.image_requests.labels("stored").inc()
            return stored
        source_size = await self.source_size(route, source_key)
        if source_size is None:
            raise ProblemError(
                ProblemCode.SOURCE_MISSING, f"source {source_key} is not stored in region {region.name}"
            )
        job_id = render_job_id(entry.ref, route.generation, source_key, variant, fmt)
        variant_format = entry.spec.variant(variant).format.type
        formats = {variant: fmt} if variant_format is OutputType.AUTO else {}
        waiter = await self._subscribe_result(region, entry.ref, job_id)
        try:
            result = await self._completion(region, job_id)
            if result is None:
                self.check_backlog(entry, region)
                job = JobMessage(
                    job_id=job_id,
                    pipeline=entry.ref,
                    generation=route.generation,
                    source_key=source_key,
                    source_size=source_size,
                    variants=[variant],
                    formats=formats,
                    region=region.name,
                )
                await self._publish(region, job)
                result = await self._next_result(waiter, self.config.image_wait_seconds)
        finally:
            await _unsubscribe(waiter)
        if result is None:
            raise ProblemError(
                ProblemCode.UNAVAILABLE,
                f"the image is still being rendered (job {job_id}); retry shortly",
                job_id=job_id,
                retry_after=self.config.retry_after_seconds,
            )
        _raise_if_failed(result)
        output = _output_of(result, variant, ProblemCode.NOT_FOUND)
        self.metrics.image_requests.labels("rendered").inc()
        return _stored(region, entry.ref, output)

    async def _stored_object(
        self, region: RegionLink, bucket: str, key: str, fmt: OutputType
    ) -> StoredObject | None:
        try:
            info = await _object_info(region, bucket, key)
        except (StoredObjectMissingError, NotFoundError):  # no such object, or no such bucket
            return None
        except (NatsError, APIError, OSError) as error:
            raise _unavailable(region, "look the output up", error) from error
        digest = sha256_hex_of_digest(info.digest)
        if digest is None:
            return None
        return StoredObject(
            region=region,
            bucket=bucket,
            key=key,
            sha256=digest,
            content_type=CONTENT_TYPES[fmt],
            size=info.size or 0,
        )


async def _object_info(region: RegionLink, bucket: str, key: str) -> ObjectInfo:
    """The metadata of object `key`, read with a direct get where the store allows it (as a region
    cut off from the others still can); `StoredObjectMissingError` when it is missing."""
    return await read_object_info(region.js, stream=streams.object_stream(bucket), bucket=bucket, name=key)


def _raise_if_failed(result: JobResult) -> None:
    if result.status is JobStatus.FAILED and result.error is not None:
        raise ProblemError(code_of(result.error.reason), result.error.message, job_id=result.job_id)


def _output_of(result: JobResult, variant: str, missing: ProblemCode) -> OutputRef:
    """The result's output of `variant`; a `missing` problem when it has none."""
    for output in result.outputs:
        if output.variant == variant:
            return output
    raise ProblemError(missing, f"job {result.job_id} has no output {variant!r}", job_id=result.job_id)


def _stored(region: RegionLink, ref: PipelineRef, output: OutputRef) -> StoredObject:
    return StoredObject(
        region=region,
        bucket=output.bucket or streams.outputs_bucket(ref, region.name),
        key=output.key,
        sha256=output.sha256,
        content_type=output.content_type,
        size=output.size,
    )


async def _unsubscribe(subscription: Subscription) -> None:
    try:
        await subscription.unsubscribe()
    except NatsError as error:
        logger.debug("Unsubscribing from %s failed: %s", subscription.subject, error)
