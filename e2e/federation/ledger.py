"""Counting every job: what the gateways accepted, and what the regions' workers completed.

The ledger submits jobs through the gateways over plain HTTP, each with its own job id as the
`Idempotency-Key`, and keeps every job that got a 202 with the region that accepted it (the 202 is
the platform's promise: accepted means durable). Refusals are counted by gateway and status.

Completion is read from the platform's own records, not from the gateways: every region's workers
write a completion record per job (a KV bucket per region), and every region holds replicas of the
others' buckets. For each origin region the ledger reads its bucket, or, while that region is
down, a replica of it held elsewhere; one NATS connection listing every region's servers reaches
them all (the regions are one supercluster). A job is then

- completed: a record says it succeeded;
- reprocessed: records of more than one region with the same output bytes (sha256), as when a
  backup drains a job its failed origin had done but whose record had not been replicated yet;
  delivery is at-least-once and outputs are deterministic, so this costs work, not correctness;
- a duplicate: records whose output bytes differ (or one succeeded and another failed): the
  platform produced two different results for one job;
- lost: accepted, and no record within the timeout.

`tally` is the pure part: from what was accepted and what was found, the counts per region.
Caveat: a record that exists only in a lost region whose replicas lag behind is not seen until the
region or a replica catches up; `settle` waits for that up to its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
import nats
from nats.aio.client import Client as NatsClient
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.errors import APIError
from pydantic import ValidationError

from pixelmesh.api import streams
from pixelmesh.api.messages import JobResult, JobStatus, PipelineRef

log = logging.getLogger(__name__)

DELETED = ("DEL", "PURGE")
HOME_REGION_HEADER = "X-PixelMesh-Home-Region"
RETRIED = (429, 503)
"""Refusals a client retries: the platform says "not now" (backlog full, region unavailable)."""


@dataclass(frozen=True, slots=True)
class Submission:
    """A job a gateway answered 202 for."""

    job_id: str
    gateway: str
    """The region whose gateway took the request."""
    region: str
    """The region that accepted the job (from the gateway's answer)."""
    accepted_at: float
    """`time.monotonic()` of the answer."""
    home: str | None = None
    """The `X-PixelMesh-Home-Region` the request carried (None: not sent)."""
    latency: float = 0.0
    """Seconds from sending the request to the 202 (the accept: upload, store, PubAck)."""


@dataclass(frozen=True, slots=True)
class Completion:
    """One completion record of a job, as found in one region's records."""

    job_id: str
    region: str
    """The region whose bucket holds the record (whose workers completed the job)."""
    succeeded: bool
    outputs: tuple[tuple[str, str], ...]
    """(variant, sha256) of each output, sorted."""
    finished_at: datetime | None = None
    """When the worker finished it (wall clock, from the record)."""

    @classmethod
    def of(cls, region: str, result: JobResult) -> Completion:
        return cls(
            job_id=result.job_id,
            region=region,
            succeeded=result.status is JobStatus.SUCCEEDED,
            outputs=tuple(sorted((output.variant, output.sha256) for output in result.outputs)),
            finished_at=result.finished_at,
        )


@dataclass(frozen=True, slots=True)
class RegionTally:
    """The fate of the jobs one region accepted."""

    accepted: int = 0
    completed: int = 0
    failed: int = 0
    """Completed with a failure record (bad input, max deliveries): not lost, not a success."""
    reprocessed: int = 0
    """Completed in more than one region into the same bytes: extra work, the same result."""
    duplicates: int = 0
    """Completed into different bytes (or both failed and succeeded): two results for one job."""
    lost: int = 0


@dataclass(frozen=True, slots=True)
class Tally:
    """Every accepted job's fate, per accepting region."""

    regions: dict[str, RegionTally]
    lost_jobs: tuple[str, ...]
    duplicate_jobs: tuple[str, ...]
    completed_by: dict[str, int]
    """Completions by the region that did the work (a failed-over job is done by the backup)."""
    reprocessed_jobs: tuple[str, ...] = ()

    @property
    def total(self) -> RegionTally:
        values = list(self.regions.values())
        return RegionTally(
            accepted=sum(v.accepted for v in values),
            completed=sum(v.completed for v in values),
            failed=sum(v.failed for v in values),
            reprocessed=sum(v.reprocessed for v in values),
            duplicates=sum(v.duplicates for v in values),
            lost=sum(v.lost for v in values),
        )


def is_duplicate(completions: Sequence[Completion]) -> bool:
    """Completed into different results: outputs with different bytes, or a success and a failure."""
    return len({(c.succeeded, c.outputs) for c in completions}) > 1


def is_reprocessed(completions: Sequence[Completion]) -> bool:
    """Completed in more than one region into the same result."""
    return len({c.region for c in completions}) > 1 and not is_duplicate(completions)


def tally(accepted: Mapping[str, Submission], found: Mapping[str, Sequence[Completion]]) -> Tally:
    """Count, per accepting region, what became of every accepted job."""
    counts: dict[str, Counter[str]] = {}
    lost: list[str] = []
    duplicates: list[str] = []
    reprocessed: list[str] = []
    completed_by: Counter[str] = Counter()
    for job_id, submission in accepted.items():
        region = counts.setdefault(submission.region, Counter())
        region["accepted"] += 1
        completions = found.get(job_id, ())
        if not completions:
            region["lost"] += 1
            lost.append(job_id)
            continue
        if is_duplicate(completions):
            region["duplicates"] += 1
            duplicates.append(job_id)
        elif is_reprocessed(completions):
            region["reprocessed"] += 1
            reprocessed.append(job_id)
        region["completed" if any(c.succeeded for c in completions) else "failed"] += 1
        completed_by.update({c.region for c in completions})
    return Tally(
        regions={
            name: RegionTally(**{key: count[key] for key in RegionTally.__dataclass_fields__})
            for name, count in sorted(counts.items())
        },
        lost_jobs=tuple(sorted(lost)),
        duplicate_jobs=tuple(sorted(duplicates)),
        completed_by=dict(sorted(completed_by.items())),
        reprocessed_jobs=tuple(sorted(reprocessed)),
    )


def record_streams(origin: str, holders: Iterable[str]) -> list[tuple[str, str]]:
    """(stream, bucket) holding `origin`'s completion records: its own first, then its replicas."""
    bucket = streams.completions_bucket(origin)
    own = streams.kv_stream(bucket)
    return [(own, bucket)] + [
        (streams.replica_stream(own, holder), bucket) for holder in holders if holder != origin
    ]


@dataclass
class JobLedger:
    """Submits jobs through the gateways and verifies each accepted one completes exactly once."""

    pipeline: PipelineRef
    gateways: Mapping[str, str]
    """Region -> gateway base URL."""
    nats_urls: Mapping[str, str]
    """Region -> NATS URL (records are read through any of them)."""
    api_key: str
    sources: Sequence[bytes]
    """Images to submit, used in turn (identical uploads are stored once per region)."""
    record_regions: Sequence[str] = ()
    """Origins of completion records to read; default: the regions of `nats_urls`."""
    accepted: dict[str, Submission] = field(default_factory=dict)
    refused: Counter[tuple[str, int]] = field(default_factory=Counter)
    """(gateway region, HTTP status or 0 for no answer) -> count."""
    completed_at: dict[str, float] = field(default_factory=dict)
    """Job id -> `time.monotonic()` of the read that first found a record of it."""
    refusal_reasons: Counter[str] = field(default_factory=Counter)
    """"<gateway> <status> <problem detail>" -> count."""
    retried: int = 0
    """Refusals retried with the same job id."""
    request_timeout: float = 30.0
    retry_pause: float = 0.5
    _next_source: itertools.cycle[bytes] | None = None
    _http: aiohttp.ClientSession | None = None
    _nats: NatsClient | None = None

    async def __aenter__(self) -> JobLedger:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._nats is not None:
            with contextlib.suppress(NatsError, OSError):
                await self._nats.close()
            self._nats = None

    # --- submitting ----------------------------------------------------------------------

    async def submit(
        self, gateway: str, source: bytes | None = None, *, home: str | None = None, retries: int = 0
    ) -> Submission | None:
        """One job through `gateway`'s gateway; the submission if it got a 202, else None.

        `home` is sent as `X-PixelMesh-Home-Region` ("" routes by weight alone); None sends none,
        so the gateway's own region is the caller's home. A 503 or 429 is retried up to `retries`
        times with the same job id (the `Idempotency-Key`), as a client honouring `Retry-After`
        would, after at most `retry_pause` seconds; each refusal is counted either way.
        """
        if source is None:
            if self._next_source is None:
                self._next_source = itertools.cycle(self.sources)
            source = next(self._next_source)
        job_id = uuid.uuid4().hex
        for attempt in range(retries + 1):
            sent = time.monotonic()
            status, body, pause = await self._post(gateway, job_id, source, home)
            if status == 202:
                now = time.monotonic()
                region = str(body.get("region", ""))
                submission = Submission(job_id, gateway, region, now, home, now - sent)
                self.accepted[job_id] = submission
                return submission
            self.refused[(gateway, status)] += 1
            self.refusal_reasons[f"{gateway} {status} {body.get('detail', body.get('title', ''))}"] += 1
            if status not in RETRIED or attempt == retries:
                return None
            self.retried += 1
            await asyncio.sleep(min(pause, self.retry_pause))
        return None

    async def _post(
        self, gateway: str, job_id: str, source: bytes, home: str | None
    ) -> tuple[int, dict[str, Any], float]:
        """(HTTP status or 0 for no answer, the JSON body, Retry-After seconds) of one POST."""
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.request_timeout))
        url = f"{self.gateways[gateway]}/v1/pipelines/{self.pipeline.namespace}/{self.pipeline.name}/jobs"
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "Idempotency-Key": job_id,
            "Content-Type": "application/octet-stream",
        }
        if home is not None:
            headers[HOME_REGION_HEADER] = home
        try:
            async with self._http.post(url, data=source, headers=headers) as reply:
                body = await reply.json(content_type=None)
                pause = float(reply.headers.get("Retry-After", "1") or 1)
                return reply.status, body if isinstance(body, dict) else {}, pause
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            log.info("Job %s got no answer from the gateway of %s: %r", job_id, gateway, error)
            return 0, {"detail": type(error).__name__}, 0.0

    async def submit_many(
        self,
        per_gateway: Mapping[str, int],
        *,
        concurrency: int = 8,
        home: str | None = None,
        retries: int = 0,
    ) -> None:
        """Submit `count` jobs through each gateway, `concurrency` requests in flight at a time."""
        queue: asyncio.Queue[str] = asyncio.Queue()
        for gateway, count in per_gateway.items():
            for _ in range(count):
                queue.put_nowait(gateway)

        async def lane() -> None:
            while not queue.empty():
                await self.submit(queue.get_nowait(), home=home, retries=retries)

        await asyncio.gather(*(lane() for _ in range(concurrency)))

    async def submit_paced(
        self,
        gateways: Sequence[str],
        rate: float,
        stop: asyncio.Event,
        *,
        home: str | None = None,
        in_flight: int = 4,
    ) -> None:
        """Submit about `rate` jobs a second, spread evenly over `gateways`, until `stop` is set.

        Each gateway has its own pace and its own limit of requests in flight, so a gateway that
        hangs (its region just died) slows only its own share.
        """

        async def pace(gateway: str) -> None:
            period = len(gateways) / rate
            slots = asyncio.Semaphore(in_flight)
            tasks: set[asyncio.Task[Submission | None]] = set()

            async def one() -> Submission | None:
                try:
                    return await self.submit(gateway, home=home)
                finally:
                    slots.release()

            next_at = time.monotonic()
            while not stop.is_set():
                await slots.acquire()
                task = asyncio.create_task(one())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                next_at += period
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(0.0, next_at - time.monotonic()))
            if tasks:
                await asyncio.gather(*tasks)

        await asyncio.gather(*(pace(gateway) for gateway in gateways))

    # --- verifying -----------------------------------------------------------------------

    async def completions(self) -> dict[str, list[Completion]]:
        """Every completion record found now, by job id (only jobs this ledger accepted)."""
        js = await self._jetstream()
        holders = list(self.nats_urls)
        found: dict[str, list[Completion]] = {}
        for origin in self.record_regions or holders:
            records = await self._read_origin(js, origin, holders)
            for job_id, completion in records.items():
                if job_id in self.accepted:
                    found.setdefault(job_id, []).append(completion)
        now = time.monotonic()
        for job_id in found:
            self.completed_at.setdefault(job_id, now)
        return found

    async def settle(
        self, within: float, *, interval: float = 0.5, jobs: Collection[str] | None = None
    ) -> Tally:
        """Wait until every accepted job (of `jobs`, if given) has a record, at most `within`
        seconds; the tally of every accepted job then."""
        deadline = time.monotonic() + within
        awaited = set(self.accepted if jobs is None else jobs)
        while True:
            found = await self.completions()
            if awaited <= set(found) or time.monotonic() >= deadline:
                return tally(self.accepted, found)
            await asyncio.sleep(interval)

    def accept_latency(self, region: str | None = None) -> dict[str, float]:
        """Median and 99th percentile seconds of the 202s (of jobs `region` accepted, if given)."""
        seconds = sorted(s.latency for s in self.accepted.values() if region is None or s.region == region)
        if not seconds:
            return {}
        return {
            "p50": round(seconds[len(seconds) // 2], 4),
            "p99": round(seconds[min(len(seconds) - 1, int(len(seconds) * 0.99))], 4),
        }

    def accepted_by(
        self, region: str, *, after: float | None = None, before: float | None = None
    ) -> list[str]:
        """Ids of the jobs `region` accepted (within `after`..`before`, `time.monotonic()`)."""
        return [
            job_id
            for job_id, s in self.accepted.items()
            if s.region == region
            and (after is None or s.accepted_at >= after)
            and (before is None or s.accepted_at < before)
        ]

    async def _jetstream(self) -> JetStreamContext:
        if self._nats is None or self._nats.is_closed:
            self._nats = await nats.connect(
                servers=list(self.nats_urls.values()),
                connect_timeout=2,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.2,
                error_cb=_quiet,
            )
        return self._nats.jetstream(timeout=3)

    async def _read_origin(
        self, js: JetStreamContext, origin: str, holders: Sequence[str]
    ) -> dict[str, Completion]:
        """`origin`'s records from its own bucket, or else from the first replica that answers."""
        for stream, bucket in record_streams(origin, holders):
            try:
                return await _read_records(js, stream, bucket, origin)
            except (NatsError, APIError, OSError, TimeoutError) as error:
                log.info("Completion records of %s are not readable from %s now: %r", origin, stream, error)
        return {}


async def _read_records(js: JetStreamContext, stream: str, bucket: str, origin: str) -> dict[str, Completion]:
    """The live record of every key in a completion stream (a bucket or a replica of one)."""
    info = await js.stream_info(stream)
    if not info.state.messages:
        return {}
    prefix = streams.kv_subject(bucket, "")
    subscription = await js.subscribe(
        prefix + ">",
        stream=stream,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
    )
    records: dict[str, Completion] = {}
    try:
        while True:
            message = await subscription.next_msg(timeout=3)
            key = message.subject.removeprefix(prefix)
            if (message.headers or {}).get("KV-Operation") in DELETED:
                records.pop(key, None)
            else:
                try:
                    records[key] = Completion.of(origin, JobResult.model_validate_json(message.data))
                except ValidationError as error:
                    log.warning("Completion record %s in %s does not parse: %s", key, stream, error)
            if message.metadata.num_pending == 0:
                return records
    finally:
        with contextlib.suppress(NatsError):
            await subscription.unsubscribe()


async def _quiet(_error: Exception) -> None:
    """Connection errors are expected while a region is down; the client reconnects elsewhere."""
