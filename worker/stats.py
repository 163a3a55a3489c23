"""How fast this worker serves jobs, for the autoscaler.

KEDA's scaler sizes a fleet from the queue alone; it cannot know that one replica serves 40 small
thumbnails a second but one AVIF encode every two. Each worker keeps two totals, jobs served and
busy seconds (wall time with at least one job in hand), and puts them in the worker-stats bucket
every few seconds. The operator divides the growth of one by the growth of the other.

Busy time rather than uptime: an idle replica's rate says nothing about its speed. A replica that
is busy but not saturated reports a lower rate than it could reach, which errs towards more
replicas, the safe side.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from nats.js.kv import KeyValue

from pixelmesh.api import streams
from pixelmesh.api.latency import BUCKETS, bucket_of
from pixelmesh.api.messages import PipelineRevision, WorkerReport
from pixelmesh.cancellation import resume_cancellation

logger = logging.getLogger(__name__)


@dataclass
class ServiceMeter:
    """Jobs served and busy time; `started`/`finished` bracket every job in hand."""

    served: int = 0
    failed: int = 0
    """Of `served`, the jobs that failed (for good or for now): a traffic shift's guard reads it."""
    latency_counts: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    """Jobs served, by latency bucket (`pixelmesh.api.latency`): the guard's p99 reads it."""
    _busy: float = 0.0
    _active: int = 0
    _busy_since: float | None = field(default=None, repr=False)

    def started(self, now: float) -> None:
        if self._active == 0:
            self._busy_since = now
        self._active += 1

    def finished(
        self, now: float, *, served: bool, failed: bool = False, latency_seconds: float | None = None
    ) -> None:
        """One job out of hand; `latency_seconds` from its accept to now, when known."""
        self._active = max(0, self._active - 1)
        if served:
            self.served += 1
            self.failed += int(failed)
            if latency_seconds is not None:
                self.latency_counts[bucket_of(latency_seconds)] += 1
        if self._active == 0 and self._busy_since is not None:
            self._busy += now - self._busy_since
            self._busy_since = None

    def busy_seconds(self, now: float) -> float:
        """Busy time so far, counting the current busy stretch up to `now`."""
        ongoing = now - self._busy_since if self._busy_since is not None else 0.0
        return self._busy + ongoing

    @property
    def active(self) -> int:
        return self._active


async def report_forever(
    bucket: KeyValue,
    meter: ServiceMeter,
    *,
    revision: PipelineRevision,
    worker: str,
    region: str,
    threads: int,
    interval: float,
) -> None:
    """Put this worker's totals into the bucket every `interval` seconds until cancelled."""
    key = streams.worker_stats_key(revision.ref, worker)
    while True:
        report = WorkerReport(
            worker=worker,
            pipeline=revision.ref,
            region=region,
            generation=revision.generation,
            served=meter.served,
            failed=meter.failed,
            latency_counts=list(meter.latency_counts),
            busy_seconds=round(meter.busy_seconds(time.monotonic()), 3),
            in_flight=meter.active,
            threads=threads,
        )
        with contextlib.suppress(Exception):  # a lost report costs nothing: the next one has the totals
            await bucket.put(key, report.model_dump_json(by_alias=True).encode())
        resume_cancellation()
        await asyncio.sleep(interval)
