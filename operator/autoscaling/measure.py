"""From raw readings to what a decision takes: the backlog, the arrival rate, the service rate.

On every tick the operator reads, per pipeline and region, the consumer's pending and ack-pending
(the backlog), the stream's last sequence number, and each worker's running totals (jobs served,
busy seconds) from the worker-stats bucket. A rate is a difference over time, so one reading alone
says little: `RateMemory` keeps what the next difference needs, and `measure` turns (memory,
reading) into (measurements, memory) with no clock and no I/O of its own.

- Arrivals: (time, last sequence) samples over a window of a few intervals. A work-queue stream
  deletes what was acked, but its last sequence grows by one per accepted job; a sequence that goes
  backwards means the stream was recreated, and the samples start afresh.
- Service: per worker, the growth of (served, busy seconds) since the previous read, summed over
  the window. A worker seen for the first time counts its whole totals (they began at zero when it
  started); one whose totals shrank restarted under the same name and counts from zero. Without
  completed work in the window (an idle fleet) the last good rate stands: idleness says nothing
  about speed, and the first burst after a quiet night should be sized with yesterday's speed.

Caveat: a failed backlog read makes the measurement missing as a whole (the decision then holds the
count); a failed rate read only leaves that need out of the decision.
"""

from __future__ import annotations

from dataclasses import dataclass

from pixelmesh.operator.autoscaling.decision import Measurements, arrival_rate, service_rate


@dataclass(frozen=True, slots=True)
class WorkerTotals:
    """One worker's running totals, as its last report in the worker-stats bucket says."""

    worker: str
    served: int
    busy_seconds: float
    failed: int = 0
    latency_counts: tuple[int, ...] = ()
    """Jobs served by latency bucket (`pixelmesh.api.latency`); empty from a worker that does not count."""


@dataclass(frozen=True, slots=True)
class QueueReading:
    """One read of a pipeline's queue and workers in one region; None where the read failed."""

    backlog: int | None
    """Consumer pending + ack pending, from the consumer's leader."""
    last_sequence: int | None = None
    """The stream's last sequence number."""
    workers: tuple[WorkerTotals, ...] | None = None
    """The latest report of every worker of the pipeline in the region."""


@dataclass(frozen=True, slots=True)
class WorkDone:
    """Jobs served and busy seconds added by the fleet between two reads."""

    at: float
    jobs: int
    busy_seconds: float


@dataclass(frozen=True, slots=True)
class RateMemory:
    """What the next rate needs from the reads before it."""

    sequences: tuple[tuple[float, int], ...] = ()
    """(time, last sequence) samples inside the window."""
    totals: tuple[WorkerTotals, ...] = ()
    """Each worker's totals at the previous read."""
    work: tuple[WorkDone, ...] = ()
    """The fleet's growth between consecutive reads, inside the window."""
    service_rate: float | None = None
    """The last rate measured from completed work: kept while the fleet is idle."""


def _sequences(
    memory: RateMemory, last_sequence: int | None, now: float, window: float
) -> tuple[tuple[float, int], ...]:
    if last_sequence is None:
        return ()
    kept = [s for s in memory.sequences if now - s[0] <= window]
    if kept and last_sequence < kept[-1][1]:
        kept = []  # the stream was recreated: its sequence started again
    return (*kept, (now, last_sequence))


def _growth(previous: tuple[WorkerTotals, ...], current: tuple[WorkerTotals, ...]) -> tuple[int, float]:
    before = {w.worker: w for w in previous}
    jobs, busy = 0, 0.0
    for worker in current:
        last = before.get(worker.worker)
        if last is None or worker.served < last.served or worker.busy_seconds < last.busy_seconds:
            jobs += worker.served
            busy += worker.busy_seconds
        else:
            jobs += worker.served - last.served
            busy += worker.busy_seconds - last.busy_seconds
    return jobs, busy


def _service(
    memory: RateMemory, workers: tuple[WorkerTotals, ...] | None, now: float, window: float
) -> tuple[tuple[WorkerTotals, ...], tuple[WorkDone, ...], float | None]:
    if workers is None:
        return memory.totals, memory.work, memory.service_rate
    jobs, busy = _growth(memory.totals, workers)
    work = tuple(w for w in memory.work if now - w.at <= window)
    if jobs or busy:
        work = (*work, WorkDone(now, jobs, busy))
    measured = service_rate({"window": (float(sum(w.jobs for w in work)), sum(w.busy_seconds for w in work))})
    return workers, work, measured if measured is not None else memory.service_rate


def measure(
    memory: RateMemory, reading: QueueReading, current_replicas: int, now: float, window: float
) -> tuple[Measurements, RateMemory]:
    """The measurements of one tick at `now` (seconds), and the memory for the next one.

    `window` is how far back the rates look (a few decision intervals).
    """
    sequences = _sequences(memory, reading.last_sequence, now, window)
    totals, work, rate = _service(memory, reading.workers, now, window)
    measurements = Measurements(
        current_replicas=current_replicas,
        backlog=reading.backlog,
        arrival_rate=arrival_rate(sequences, now, window) if sequences else None,
        service_rate=rate,
    )
    return measurements, RateMemory(sequences, totals, work, rate)
