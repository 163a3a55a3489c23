"""The JetStream pull consumer: fetch jobs, run them on libvips threads, store, record, settle.

Shape of the hot path, per job: parse the message -> completion record exists? (ack, done) ->
load the source from the sources object store -> wait for a libvips thread -> `run_pipeline` ->
store each output under its deterministic key -> `OutcomeRecorder.settle` (completion record,
result event, ack). Everything that can be done once (bucket handles, the consumer's ack wait and
max deliveries, metric children, the pipeline spec) is done in `bind()`.

Concurrency: up to `concurrency` jobs are in flight, so sources load and outputs store while other
jobs decode; at most `threads` of them hold a libvips thread. Fetches ask for no more jobs than
there are free slots, so a fetched job starts at once. A job waiting for a libvips thread when
shutdown begins is nak'ed immediately ("released") for another worker to take.

Long jobs: one heartbeat task sends `in_progress()` for every in-flight job older than the
heartbeat interval (a third of the ack wait), so only crashed workers' jobs are redelivered.

Failures of NATS itself (a restart, a partition) surface as exceptions in fetch or in a job's I/O:
the fetch loop logs and backs off, the job is nak'ed or left to redeliver, and nats-py reconnects on
its own. A redelivered job is cheap: its outputs are rewritten with the same bytes under the same
keys, or its completion record short-circuits it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import NotJSMessageError
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue
from pydantic import ValidationError

from pixelmesh.api import streams
from pixelmesh.api.messages import (
    FailureReason,
    JobMessage,
    JobResult,
    JobStatus,
    OutputRef,
    PipelineRevision,
)
from pixelmesh.api.pipeline import OutputType, PipelineSpec
from pixelmesh.cancellation import resume_cancellation
from pixelmesh.objectstore import ObjectNotFoundError, put_object, read_object
from pixelmesh.records import CompletionLookup
from pixelmesh.worker.config import WorkerConfig
from pixelmesh.worker.errors import PermanentError, RetryableError
from pixelmesh.worker.metrics import WorkerMetrics
from pixelmesh.worker.outcome import DUPLICATE, RELEASED, SUCCEEDED, Fate, OutcomeRecorder, decide, describe
from pixelmesh.worker.pipeline import EncodedOutput, run_pipeline
from pixelmesh.worker.source import check_source_size
from pixelmesh.worker.stats import ServiceMeter, report_forever

logger = logging.getLogger(__name__)

BIND_RETRY_SECONDS = 2.0
FETCH_ERROR_BACKOFF = (0.2, 0.5, 1.0, 2.0, 5.0)


class RunPipeline(Protocol):
    """The executor's signature (`pipeline.run_pipeline`); benchmarks may pass another."""

    def __call__(
        self,
        spec: PipelineSpec,
        source: bytes,
        *,
        variants: Sequence[str] | None = None,
        formats: Mapping[str, OutputType] | None = None,
        deadline: float | None = None,
        observe_step: Callable[[str, float], None] | None = None,
    ) -> list[EncodedOutput]: ...


@dataclass(slots=True)
class InFlight:
    """A fetched job until it is settled."""

    msg: Msg
    fetched_at: float
    """time.monotonic() at fetch."""
    last_heartbeat: float


@dataclass(frozen=True, slots=True)
class ConsumerLimits:
    """What the bound consumer dictates (read from the server once)."""

    ack_wait_seconds: float
    max_deliver: int


def _since_accepted(msg: Msg) -> float | None:
    """Seconds since the job's stream stored it (its accept; a mirror keeps the origin's time),
    by this host's clock; None for a message without JetStream metadata."""
    try:
        stored = msg.metadata.timestamp
    except NotJSMessageError:
        return None
    return max(0.0, (datetime.now(UTC) - stored).total_seconds())


def source_locations(job: JobMessage, region: str) -> list[tuple[str, str]]:
    """(stream, bucket) pairs that may hold the job's source, nearest first.

    A job accepted in another region (a drain after its failover) is read from this region's
    replica of that region's sources, and from the origin itself when the replica lags.
    """
    bucket = job.source_bucket or streams.sources_bucket(job.region or region)
    origin = streams.object_stream(bucket)
    if job.region and job.region != region and not job.source_bucket:
        return [(streams.replica_stream(origin, region), bucket), (origin, bucket)]
    return [(origin, bucket)]


class JobConsumer:
    """Runs one pipeline's jobs from its durable pull consumer until told to stop."""

    def __init__(
        self,
        *,
        config: WorkerConfig,
        revision: PipelineRevision,
        nc: NatsClient,
        executor: Executor,
        metrics: WorkerMetrics,
        run: RunPipeline = run_pipeline,
    ) -> None:
        self._config = config
        self._revision = revision
        self._ref = revision.ref
        self._spec = revision.spec
        self._nc = nc
        self._js: JetStreamContext = nc.jetstream()
        self._executor = executor
        self._metrics = metrics
        self._run = run
        self._threads = asyncio.Semaphore(config.effective_threads)
        self._concurrency = config.effective_concurrency
        self._in_flight: dict[int, InFlight] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._slot_freed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._subscription: JetStreamContext.PullSubscription | None = None
        self._advisories: Subscription | None = None
        self._outputs_bucket = streams.outputs_bucket(self._ref, config.region)
        self._recorder: OutcomeRecorder | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._limits = ConsumerLimits(ack_wait_seconds=30.0, max_deliver=-1)
        self._meter = ServiceMeter()
        self._stats_bucket: KeyValue | None = None
        self._stats: asyncio.Task[None] | None = None

    # --- state ----------------------------------------------------------------------------------

    @property
    def bound(self) -> bool:
        """Bound to the durable consumer and its buckets."""
        return self._subscription is not None

    @property
    def draining(self) -> bool:
        return self._stopping.is_set()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def limits(self) -> ConsumerLimits:
        return self._limits

    # --- lifecycle ------------------------------------------------------------------------------

    async def bind(self) -> None:
        """Wait until the consumer and buckets exist (the operator creates them), then bind to them."""
        region = self._config.region
        stream = self._config.job_stream or streams.job_stream(self._ref, region)
        durable = self._config.job_consumer or streams.worker_consumer(self._ref)
        while not self._stopping.is_set():
            try:
                info = await self._js.consumer_info(stream, durable)
                # Bound only to know they exist: objects are read and written by subject.
                await self._js.object_store(streams.sources_bucket(region))
                await self._js.object_store(self._outputs_bucket)
                completions = await self._js.key_value(streams.completions_bucket(region))
                dead_letters = await self._js.key_value(streams.dead_letters_bucket(region))
            except Exception as exc:  # not provisioned yet, JetStream unavailable, disconnected
                logger.warning(
                    "Pipeline %s is not provisioned or NATS is unreachable (%s); retrying in %ss.",
                    self._ref,
                    describe(exc),
                    BIND_RETRY_SECONDS,
                )
                await self._sleep_unless_stopping(BIND_RETRY_SECONDS)
                continue
            break
        else:
            return
        config = info.config
        ack_wait = min([config.ack_wait or 30.0, *(config.backoff or [])])
        self._limits = ConsumerLimits(ack_wait_seconds=ack_wait, max_deliver=config.max_deliver or -1)
        self._recorder = OutcomeRecorder(
            nc=self._nc,
            revision=self._revision,
            completions=completions,
            dead_letters=dead_letters,
            metrics=self._metrics,
            region=region,
            worker=self._config.worker_name,
            lookup=CompletionLookup(region),
        )
        try:
            self._stats_bucket = await self._js.key_value(streams.worker_stats_bucket(region))
        except Exception as exc:  # reports only feed the autoscaler: the worker serves without them
            logger.warning(
                "The worker-stats bucket is not available (%s); no service-rate reports.", describe(exc)
            )
        self._advisories = await self._nc.subscribe(
            f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{durable}",
            queue=f"pixelmesh-workers-{streams.token(self._ref)}",
            cb=self._on_max_deliveries,
        )
        self._subscription = await self._js.pull_subscribe_bind(durable=durable, stream=stream)
        logger.info(
            "Bound to consumer %s of stream %s (ack wait %ss, max deliveries %s, %d threads, %d in flight).",
            durable,
            stream,
            ack_wait,
            self._limits.max_deliver,
            self._config.effective_threads,
            self._concurrency,
        )

    def stop(self) -> None:
        """Begin draining: no more fetches; jobs waiting for a thread are released."""
        if not self._stopping.is_set():
            logger.info("Worker %s is draining: no new jobs will be fetched.", self._config.worker_name)
        self._stopping.set()
        self._slot_freed.set()

    async def run(self) -> None:
        """Fetch and process jobs until `stop()`; then call `finish` for the jobs still in flight."""
        if not self.bound:
            await self.bind()
        if not self.bound:
            return
        self._heartbeat = asyncio.create_task(self._heartbeats(), name="heartbeats")
        if self._stats_bucket is not None:
            self._stats = asyncio.create_task(
                report_forever(
                    self._stats_bucket,
                    self._meter,
                    revision=self._revision,
                    worker=self._config.worker_name,
                    region=self._config.region,
                    threads=self._config.effective_threads,
                    interval=self._config.stats_seconds,
                ),
                name="service-rate-reports",
            )
        await self._fetch_loop()

    async def finish(self, grace: float) -> bool:
        """Wait up to `grace` seconds for in-flight jobs; release the rest. True if all finished.

        Heartbeats go on meanwhile, so a long job is not redelivered while it is finishing here.
        """
        await self._release_buffered()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
        else:
            pending = set()
        if pending:
            logger.warning(
                "%d jobs did not finish within the drain grace period; releasing them.", len(pending)
            )
            for entry in list(self._in_flight.values()):
                with contextlib.suppress(Exception):
                    await entry.msg.nak()
            for task in pending:
                task.cancel()
        await self._release_buffered()
        if self._subscription is not None:
            # Unsubscribe rather than let the connection drain it: nats-py's fetch takes buffered
            # messages without marking them done, and draining would wait for them forever.
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()
        for background in (self._heartbeat, self._stats):
            if background is not None:
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await background
        if self._advisories is not None:
            with contextlib.suppress(Exception):
                await self._advisories.unsubscribe()
        return not pending

    # --- fetching -------------------------------------------------------------------------------

    async def _fetch_loop(self) -> None:
        assert self._subscription is not None
        errors = 0
        batch_limit = self._config.effective_fetch_batch
        while not self._stopping.is_set():
            free = self._concurrency - len(self._in_flight)
            if free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            fetch = asyncio.ensure_future(
                self._subscription.fetch(min(free, batch_limit), timeout=self._config.fetch_timeout_seconds)
            )
            stopping = asyncio.ensure_future(self._stopping.wait())
            try:
                await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
            if not fetch.done():
                # Let the open pull request run out instead of cancelling it: the server would go
                # on delivering to an inbox nobody reads, even the jobs this worker releases.
                await asyncio.wait({fetch}, timeout=self._config.fetch_timeout_seconds + 1.0)
                if not fetch.done():
                    fetch.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await fetch
                    break
            try:
                messages = fetch.result()
            except TimeoutError:
                errors = 0  # an empty poll: the queue is idle
                continue
            except Exception as exc:
                self._metrics.fetch_errors.inc()
                delay = FETCH_ERROR_BACKOFF[min(errors, len(FETCH_ERROR_BACKOFF) - 1)]
                errors += 1
                logger.warning("Fetching jobs failed (%s); retrying in %ss.", describe(exc), delay)
                await self._sleep_unless_stopping(delay)
                continue
            errors = 0
            if self._stopping.is_set():
                for msg in messages:
                    await self._release(msg)
                break
            for msg in messages:
                self._start(msg)

    async def _release(self, msg: Msg) -> None:
        """Give a fetched, unstarted job back at once (nak without delay) for another worker."""
        assert self._recorder is not None
        try:
            await self._recorder.settle(msg, None, RELEASED)
        except Exception as exc:
            logger.warning(
                "A fetched job could not be released (%s); it returns after the ack wait.", describe(exc)
            )

    def _start(self, msg: Msg) -> None:
        now = time.monotonic()
        key = id(msg)
        self._in_flight[key] = InFlight(msg=msg, fetched_at=now, last_heartbeat=now)
        self._meter.started(now)
        self._metrics.in_flight.inc()
        task = asyncio.create_task(self._handle(msg, now), name=f"job-{msg.metadata.sequence.stream}")
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._finished, key))

    def _finished(self, key: int, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._in_flight.pop(key, None) is not None:
            self._metrics.in_flight.dec()
        self._slot_freed.set()

    async def _release_buffered(self) -> None:
        """Nak jobs that reached this worker's inbox after its last fetch returned.

        nats-py keeps such late deliveries in the pull subscription's queue for the next fetch,
        which will not come. It has no public call to take them without issuing a new pull
        request, so this reads the subscription's queue directly.
        """
        if self._subscription is None:
            return
        queue: asyncio.Queue[Msg] = self._subscription._sub._pending_queue
        while not queue.empty():
            msg = queue.get_nowait()
            queue.task_done()
            if not JetStreamContext.is_status_msg(msg):
                await self._release(msg)

    async def _heartbeats(self) -> None:
        interval = self._config.heartbeat_seconds or max(self._limits.ack_wait_seconds / 3, 0.2)
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for entry in list(self._in_flight.values()):
                if now - entry.last_heartbeat >= interval:
                    entry.last_heartbeat = now
                    try:
                        await entry.msg.in_progress()
                    except Exception as exc:  # a disconnect: the job may be redelivered, which is safe
                        logger.debug("A heartbeat was not sent (%s).", describe(exc))
            resume_cancellation()

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    # --- one job --------------------------------------------------------------------------------

    async def _handle(self, msg: Msg, fetched_at: float) -> None:
        fate: Fate = RELEASED
        try:
            fate = await self._run_job(msg, fetched_at)
        finally:
            served = fate not in (RELEASED, DUPLICATE)
            self._meter.finished(
                time.monotonic(),
                served=served,
                failed=served and fate != SUCCEEDED,
                latency_seconds=_since_accepted(msg),
            )

    async def _run_job(self, msg: Msg, fetched_at: float) -> Fate:
        """Process one job and settle its message; the fate it met."""
        recorder = self._recorder
        assert recorder is not None
        job: JobMessage | None = None
        result: JobResult | None = None
        fate: Fate
        try:
            job = self._parse(msg)
            self._metrics.queue_wait.observe(max(0.0, (datetime.now(UTC) - job.submitted_at).total_seconds()))
            processed = await self._process(msg, job, fetched_at)
            if isinstance(processed, JobResult):
                result, fate = processed, SUCCEEDED
            else:
                fate = processed
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            fate = decide(
                exc,
                delivered=msg.metadata.num_delivered,
                max_deliver=self._limits.max_deliver,
                retry_delay=self._config.retry_delay,
            )
            if not isinstance(exc, PermanentError | RetryableError):
                logger.exception(
                    "Job %s hit an unexpected error.",
                    job.job_id if job else "?",
                    extra={"job_id": job.job_id if job else None},
                )
        try:
            await recorder.settle(msg, job, fate, result=result, duration=time.monotonic() - fetched_at)
        except Exception as exc:
            # The message stays unsettled and comes back after the ack wait; records are idempotent.
            logger.warning(
                "Job %s could not be settled (%s); it will be redelivered.",
                job.job_id if job else "?",
                describe(exc),
                extra={"job_id": job.job_id if job else None},
            )
        return fate

    def _parse(self, msg: Msg) -> JobMessage:
        try:
            job = JobMessage.model_validate_json(msg.data)
        except ValidationError as exc:
            raise PermanentError(FailureReason.INVALID_JOB, f"not a valid job message: {exc}") from exc
        if job.pipeline != self._ref:
            raise PermanentError(
                FailureReason.INVALID_JOB, f"job is for pipeline {job.pipeline}, this worker runs {self._ref}"
            )
        return job

    async def _process(self, msg: Msg, job: JobMessage, fetched_at: float) -> JobResult | Fate:
        """The job's result, or the fate of a job that was already complete or is released unstarted."""
        if await self._already_complete(job.job_id):
            return DUPLICATE
        deadline = self._deadline(job)
        check_source_size(job.source_size, self._spec.input)
        source = await self._load_source(job)
        if not await self._acquire_thread():
            return RELEASED
        self._metrics.processing.inc()
        try:
            outputs = await asyncio.get_running_loop().run_in_executor(
                self._executor,
                functools.partial(
                    self._run,
                    self._spec,
                    source,
                    variants=job.variants,
                    formats=job.formats,
                    deadline=deadline,
                    observe_step=self._metrics.observe_step,
                ),
            )
        finally:
            self._metrics.processing.dec()
            self._threads.release()
        refs = await self._store(job, outputs)
        return JobResult(
            job_id=job.job_id,
            pipeline=job.pipeline,
            generation=self._revision.generation,
            status=JobStatus.SUCCEEDED,
            source_key=job.source_key,
            outputs=refs,
            region=self._config.region,
            worker=self._config.worker_name,
            attempts=max(msg.metadata.num_delivered, 1),
            submitted_at=job.submitted_at,
            duration_seconds=time.monotonic() - fetched_at,
        )

    async def _already_complete(self, job_id: str) -> bool:
        assert self._recorder is not None
        try:
            return await self._recorder.is_complete(job_id)
        except Exception as exc:
            raise RetryableError(f"cannot read the completion record: {describe(exc)}") from exc

    def _deadline(self, job: JobMessage) -> float:
        """The job's processing deadline on the monotonic clock."""
        budget = self._config.job_timeout_seconds
        if job.deadline is not None:
            remaining = (job.deadline - datetime.now(UTC)).total_seconds()
            if remaining <= 0:
                raise PermanentError(
                    FailureReason.TIMEOUT, f"the job's deadline {job.deadline} passed before it ran"
                )
            budget = min(budget, remaining)
        return time.monotonic() + budget

    async def _load_source(self, job: JobMessage) -> bytes:
        """The job's source bytes (`pixelmesh.objectstore.read_object`: nats-py's `get` stalls on
        flow control); a missing source fails the job, anything else (timeout, corrupt) retries it."""
        unreachable: list[str] = []
        for stream, bucket in source_locations(job, self._config.region):
            try:
                data = await read_object(
                    self._js,
                    stream=stream,
                    bucket=bucket,
                    name=job.source_key,
                    timeout=self._config.io_timeout_seconds,
                )
            except (ObjectNotFoundError, NotFoundError):
                continue
            except Exception as exc:  # a failed origin region, a timeout, a corrupt copy: retried
                unreachable.append(f"{stream}: {describe(exc)}")
                continue
            self._metrics.bytes_in.inc(len(data))
            return data
        if unreachable:
            raise RetryableError(f"cannot load source {job.source_key}: {'; '.join(unreachable)}")
        raise PermanentError(
            FailureReason.SOURCE_MISSING, f"source {job.source_key} is not in the source store"
        )

    async def _acquire_thread(self) -> bool:
        """Wait for a libvips thread; False if shutdown began first (the job is then released)."""
        if self._stopping.is_set():
            return False
        acquire = asyncio.ensure_future(self._threads.acquire())
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({acquire, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if acquire.done() and not acquire.cancelled():
            if not self._stopping.is_set():
                return True
            self._threads.release()
            return False
        acquire.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await acquire
        if acquire.done() and not acquire.cancelled():  # acquired while being cancelled
            self._threads.release()
        return False

    async def _store(self, job: JobMessage, outputs: list[EncodedOutput]) -> list[OutputRef]:
        refs = [
            OutputRef(
                variant=out.variant,
                key=streams.output_key(
                    self._ref, self._revision.generation, job.source_key, out.variant, out.extension
                ),
                bucket=self._outputs_bucket,
                format=out.format,
                content_type=out.content_type,
                width=out.width,
                height=out.height,
                size=len(out.data),
                sha256=hashlib.sha256(out.data).hexdigest(),
            )
            for out in outputs
        ]
        try:
            # Not nats-py's `put`: its lookup of the version replaced goes through the JetStream
            # API, which a region cut off from the meta leader cannot reach, so every job whose
            # output existed (a source sent again) failed until the cut healed.
            puts = (
                put_object(self._js, bucket=self._outputs_bucket, name=ref.key, data=out.data)
                for ref, out in zip(refs, outputs, strict=True)
            )
            await asyncio.wait_for(asyncio.gather(*puts), self._config.io_timeout_seconds)
        except Exception as exc:
            raise RetryableError(f"cannot store outputs: {describe(exc)}") from exc
        for out in outputs:
            self._metrics.stored(out.format.value, len(out.data))
        return refs

    # --- dead ends ------------------------------------------------------------------------------

    async def _on_max_deliveries(self, advisory: Msg) -> None:
        """A job ran out of deliveries without an answer: record it and take it off the queue."""
        assert self._recorder is not None
        try:
            body = json.loads(advisory.data)
            stream, seq, deliveries = body["stream"], int(body["stream_seq"]), int(body.get("deliveries", 0))
            raw = await self._js.get_msg(stream, seq)
            job = JobMessage.model_validate_json(raw.data or b"")
            await self._recorder.record_exhausted(job, deliveries)
            await self._js.delete_msg(stream, seq)
        except Exception as exc:
            logger.warning("A max-deliveries advisory could not be recorded (%s).", describe(exc))
