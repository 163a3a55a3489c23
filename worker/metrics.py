"""Every metric the worker exports: names, help strings and buckets live here and nowhere else.

Dashboards and alert rules query these names, so they are part of the worker's interface. All are
prefixed `pixelmesh_worker_` and live in the worker's own registry (not the process-global one), so
several workers in one test process share one set of series instead of colliding.

A worker runs one pipeline, so `WorkerMetrics` binds the pipeline and region labels once at start-up;
the hot path only touches pre-bound children (no label lookups per job).

libvips' tracked memory is read through its C API (`vips_tracked_get_mem`), which pyvips does not
wrap: the shared library pyvips loaded is found in this process's memory map and opened with ctypes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from pixelmesh.api.messages import FailureReason

PREFIX = "pixelmesh_worker_"
REGISTRY = CollectorRegistry(auto_describe=True)

JOB_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
STEP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


class Outcome:
    """Values of the `outcome` label of `jobs_total` and `job_duration_seconds`."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    """Permanent failure: bad input, a limit, or max deliveries (a dead-letter record exists)."""
    RETRIED = "retried"
    """Transient failure: nak'ed for a later attempt."""
    DUPLICATE = "duplicate"
    """Already complete (a completion record existed): acked without work."""
    RELEASED = "released"
    """Fetched but not started before shutdown: nak'ed at once for another worker."""

    ALL = (SUCCEEDED, FAILED, RETRIED, DUPLICATE, RELEASED)


JOBS = Counter(
    PREFIX + "jobs_total",
    "Jobs handled, by pipeline, region and outcome.",
    ["pipeline", "region", "outcome"],
    registry=REGISTRY,
)
JOB_DURATION = Histogram(
    PREFIX + "job_duration_seconds",
    "Time from a job's fetch to its ack, nak or term.",
    ["pipeline", "outcome"],
    buckets=JOB_BUCKETS,
    registry=REGISTRY,
)
STEP_DURATION = Histogram(
    PREFIX + "step_duration_seconds",
    "Time spent in each pipeline step (decode, each operation, encode).",
    ["pipeline", "step"],
    buckets=STEP_BUCKETS,
    registry=REGISTRY,
)
QUEUE_WAIT = Histogram(
    PREFIX + "queue_wait_seconds",
    "Time from a job's submission to its fetch by a worker.",
    ["pipeline"],
    buckets=WAIT_BUCKETS,
    registry=REGISTRY,
)
BYTES_IN = Counter(
    PREFIX + "bytes_in_total",
    "Source bytes loaded.",
    ["pipeline"],
    registry=REGISTRY,
)
BYTES_OUT = Counter(
    PREFIX + "bytes_out_total",
    "Output bytes stored, by format.",
    ["pipeline", "format"],
    registry=REGISTRY,
)
IN_FLIGHT = Gauge(
    PREFIX + "jobs_in_flight",
    "Jobs fetched and not yet acked, nak'ed or terminated.",
    ["pipeline"],
    registry=REGISTRY,
)
PROCESSING = Gauge(
    PREFIX + "jobs_processing",
    "Jobs running on a libvips thread right now.",
    ["pipeline"],
    registry=REGISTRY,
)
REJECTIONS = Counter(
    PREFIX + "rejections_total",
    "Jobs refused permanently, by reason (too_large, too_many_pixels, corrupt, ...).",
    ["pipeline", "reason"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    PREFIX + "dead_letters_total",
    "Dead-letter records written, by reason.",
    ["pipeline", "reason"],
    registry=REGISTRY,
)
FETCH_ERRORS = Counter(
    PREFIX + "fetch_errors_total",
    "Pull requests that failed (not counting empty polls).",
    ["pipeline"],
    registry=REGISTRY,
)
NATS_CONNECTED = Gauge(
    PREFIX + "nats_connected",
    "1 while the worker is connected to NATS.",
    registry=REGISTRY,
)
NATS_RECONNECTS = Counter(
    PREFIX + "nats_reconnects_total",
    "Reconnections to NATS after a lost connection.",
    registry=REGISTRY,
)
THREADS = Gauge(
    PREFIX + "threads",
    "Threads available for libvips pipelines.",
    registry=REGISTRY,
)
LIBVIPS_MEMORY = Gauge(
    PREFIX + "libvips_memory_bytes",
    "Memory libvips is tracking (pixel buffers), from vips_tracked_get_mem.",
    registry=REGISTRY,
)
LIBVIPS_MEMORY_HIGHWATER = Gauge(
    PREFIX + "libvips_memory_highwater_bytes",
    "The most memory libvips has tracked since the process started.",
    registry=REGISTRY,
)
BUILD = Info(
    PREFIX + "pipeline",
    "The pipeline revision this worker runs.",
    registry=REGISTRY,
)


@functools.cache
def _libvips_probe(function: str) -> Callable[[], int] | None:
    """A ctypes binding to a size_t-returning libvips function, or None where it cannot be found."""
    candidates: list[str] = []
    try:
        for line in Path("/proc/self/maps").read_text().splitlines():
            path = line.split()[-1] if line.split() else ""
            if "/libvips" in path and ".so" in path and path not in candidates:
                candidates.append(path)
    except OSError:
        pass
    found = ctypes.util.find_library("vips")
    if found:
        candidates.append(found)
    for path in candidates:
        try:
            probe = getattr(ctypes.CDLL(path), function)
        except (OSError, AttributeError):
            continue
        probe.restype = ctypes.c_size_t
        probe.argtypes = []
        return lambda: int(probe())
    return None


def watch_libvips_memory() -> bool:
    """Let the libvips memory gauges read libvips at scrape time. False if libvips is not loaded."""
    current = _libvips_probe("vips_tracked_get_mem")
    highwater = _libvips_probe("vips_tracked_get_mem_highwater")
    if current is None or highwater is None:
        return False
    LIBVIPS_MEMORY.set_function(current)
    LIBVIPS_MEMORY_HIGHWATER.set_function(highwater)
    return True


class WorkerMetrics:
    """The metric children of one worker's pipeline and region, bound once."""

    def __init__(self, pipeline: str, region: str) -> None:
        self.pipeline = pipeline
        self.jobs = {outcome: JOBS.labels(pipeline, region, outcome) for outcome in Outcome.ALL}
        self.duration = {outcome: JOB_DURATION.labels(pipeline, outcome) for outcome in Outcome.ALL}
        self.queue_wait = QUEUE_WAIT.labels(pipeline)
        self.bytes_in = BYTES_IN.labels(pipeline)
        self.in_flight = IN_FLIGHT.labels(pipeline)
        self.processing = PROCESSING.labels(pipeline)
        self.fetch_errors = FETCH_ERRORS.labels(pipeline)
        self._steps: dict[str, Histogram] = {}
        self._bytes_out: dict[str, Counter] = {}
        self._rejections = {reason: REJECTIONS.labels(pipeline, reason.value) for reason in FailureReason}
        self._dead_letters = {reason: DEAD_LETTERS.labels(pipeline, reason.value) for reason in FailureReason}

    def job_done(self, outcome: str, seconds: float) -> None:
        self.jobs[outcome].inc()
        self.duration[outcome].observe(seconds)

    def observe_step(self, step: str, seconds: float) -> None:
        """Called from libvips threads: prometheus_client children are thread-safe."""
        child = self._steps.get(step)
        if child is None:
            child = self._steps.setdefault(step, STEP_DURATION.labels(self.pipeline, step))
        child.observe(seconds)

    def stored(self, output_format: str, size: int) -> None:
        child = self._bytes_out.get(output_format)
        if child is None:
            child = self._bytes_out.setdefault(output_format, BYTES_OUT.labels(self.pipeline, output_format))
        child.inc(size)

    def rejected(self, reason: FailureReason) -> None:
        self._rejections[reason].inc()

    def dead_lettered(self, reason: FailureReason) -> None:
        self._dead_letters[reason].inc()
