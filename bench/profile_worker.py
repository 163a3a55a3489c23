"""`python -m bench.profile_worker`: where a job's time goes in the real worker, and why.

Runs the real `WorkerService` in this process (one libvips thread, one job in flight) against a real
nats-server, and feeds it jobs from a publisher on another thread, one at a time, as the
`pixelmesh-worker` contender does. Three views of the same jobs:

- a breakdown per job: publish-to-result latency, and inside it the time in the source download
  (`read_object`), in `run_pipeline`, and in the outputs upload (`ObjectStore.put`), measured by
  wrapping those calls in this process (the worker's code is not changed);
- a pyinstrument profile of `run_pipeline` on the libvips thread (all jobs combined);
- a pyinstrument profile of the event-loop thread (NATS I/O, parsing, object store, records).

The breakdown goes to `bench/results/profile-<workload>-<image>.json`; the two text profiles, which
are for reading rather than keeping, go to the bench cache (`~/.cache/pixelmesh/bench/profiles/`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import hashlib
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import nats
from nats.js.object_store import ObjectStore
from pyinstrument import Profiler
from pyinstrument.renderers import ConsoleRenderer
from pyinstrument.session import Session

from bench.contenders.pixelmesh_stack import GENERATION, REGION, EventLoopThread
from bench.corpus import IMAGE_PLAN, cache_root, ensure_images
from bench.workloads import BENCH_PIPELINE, Workload, pixelmesh_pipeline_spec, variant_names, workload
from pixelmesh.api import streams
from pixelmesh.api.messages import JobMessage, JobResult, JobStatus, PipelineRevision
from pixelmesh.natsserver import NatsServer
from pixelmesh.objectstore import put_object
from pixelmesh.operator.clients.jetstream import ensure_pipeline_resources, ensure_region_buckets
from pixelmesh.operator.jetstream import PipelineStreamSettings, RegionBucketSettings
from pixelmesh.worker import consumer
from pixelmesh.worker.config import WorkerConfig
from pixelmesh.worker.libvips import configure_libvips
from pixelmesh.worker.pipeline import run_pipeline
from pixelmesh.worker.service import WorkerService

RESULTS = Path(__file__).resolve().parent / "results"


class Recorder:
    """Per-job phase times from wrapped calls, and the profiles of `run_pipeline` calls.

    One job is in flight at a time, so every call the worker makes between a publish and its
    result belongs to the job just published; the publisher names it in `current_job`.
    """

    def __init__(self) -> None:
        self.phases: dict[str, dict[str, float]] = {}
        self.pipeline_sessions: list[Session] = []
        self.current_job = ""
        self._lock = threading.Lock()

    def add(self, phase: str, seconds: float) -> None:
        with self._lock:
            entry = self.phases.setdefault(self.current_job, {})
            entry[phase] = entry.get(phase, 0.0) + seconds

    def clear(self) -> None:
        self.phases.clear()
        self.pipeline_sessions.clear()

    def profiled_run(self, *args: Any, **kwargs: Any) -> Any:
        """`run_pipeline`, timed and profiled on the libvips thread that runs it."""
        profiler = Profiler(interval=0.0005, async_mode="disabled")
        profiler.start()
        started = time.perf_counter()
        try:
            return run_pipeline(*args, **kwargs)
        finally:
            self.add("run_pipeline", time.perf_counter() - started)
            self.pipeline_sessions.append(profiler.stop())

    @contextlib.contextmanager
    def object_store_timed(self) -> Iterator[None]:
        """Time the source download (`read_object`) and the output uploads (`ObjectStore.put`)."""
        original_read, original_put = consumer.read_object, ObjectStore.put
        recorder = self

        async def timed_read(*args: Any, **kwargs: Any) -> bytes:
            started = time.perf_counter()
            try:
                return await original_read(*args, **kwargs)
            finally:
                recorder.add("source_read", time.perf_counter() - started)

        async def timed_put(store: ObjectStore, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await original_put(store, *args, **kwargs)
            finally:
                recorder.add("outputs_put (concurrent, summed)", time.perf_counter() - started)

        consumer.read_object = timed_read  # type: ignore[assignment]
        ObjectStore.put = timed_put  # type: ignore[method-assign,assignment]
        try:
            yield
        finally:
            consumer.read_object = original_read
            ObjectStore.put = original_put  # type: ignore[method-assign]


def summarise(latencies: dict[str, float], phases: dict[str, dict[str, float]]) -> dict[str, float]:
    """Mean milliseconds per phase over the jobs, and what is left of the latency (`other`)."""
    names = sorted({phase for entry in phases.values() for phase in entry})
    summary: dict[str, float] = {"latency": statistics.fmean(latencies.values()) * 1000}
    for name in names:
        summary[name] = statistics.fmean(phases.get(job, {}).get(name, 0.0) for job in latencies) * 1000
    summary["other"] = summary["latency"] - sum(summary[name] for name in names)
    return summary


class JobFeeder:
    """The publisher, on its own event loop thread: provisions, uploads the source, runs one job at a time."""

    def __init__(self, server_url: str, source: bytes, recorder: Recorder) -> None:
        self.source = source
        self.source_key = hashlib.sha256(source).hexdigest()
        self.recorder = recorder
        self.events = EventLoopThread()
        self._results: asyncio.Queue[JobResult] = asyncio.Queue()
        self.nc, self.js = self.events.call(self._provision(server_url))

    async def _provision(self, server_url: str) -> tuple[Any, Any]:
        nc = await nats.connect(server_url, name="bench-publisher")
        js = nc.jetstream()
        await ensure_region_buckets(js, RegionBucketSettings(region=REGION))
        await ensure_pipeline_resources(js, BENCH_PIPELINE, PipelineStreamSettings(region=REGION))
        await put_object(js, bucket=streams.sources_bucket(REGION), name=self.source_key, data=self.source)

        async def on_result(msg: Any) -> None:
            await self._results.put(JobResult.model_validate_json(msg.data))

        await nc.subscribe(streams.result_wildcard(BENCH_PIPELINE), cb=on_result)
        return nc, js

    async def _one_job(self, item: Workload) -> tuple[str, float]:
        job_id = f"profile-{uuid.uuid4().hex[:16]}"
        self.recorder.current_job = job_id
        job = JobMessage(
            job_id=job_id,
            pipeline=BENCH_PIPELINE,
            generation=GENERATION,
            source_key=self.source_key,
            source_size=len(self.source),
            variants=variant_names(item),
        )
        started = time.perf_counter()
        await self.js.publish(
            streams.job_subject(BENCH_PIPELINE, REGION),
            job.model_dump_json(by_alias=True, exclude_none=True).encode(),
            headers={"Nats-Msg-Id": job_id},
        )
        result = await asyncio.wait_for(self._results.get(), 120)
        if result.status is not JobStatus.SUCCEEDED:
            raise RuntimeError(f"job {job_id} failed: {result.error}")
        return job_id, time.perf_counter() - started

    async def one_job(self, item: Workload) -> tuple[str, float]:
        """Run one job from another event loop (the worker's), waiting on this thread's loop."""
        return await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(self._one_job(item), self.events.loop)
        )

    def close(self) -> None:
        self.events.call(self.nc.close())
        self.events.close()


def worker_config(pipeline_file: Path, nats_url: str) -> WorkerConfig:
    """One libvips thread, one job in flight: the profile shows one job's path without queueing."""
    return WorkerConfig(
        pipeline_file=pipeline_file,
        nats_urls=(nats_url,),
        region=REGION,
        worker_name="bench-profiled",
        threads=1,
        concurrency=1,
        fetch_batch=1,
        fetch_timeout_seconds=1.0,
        metrics_host="127.0.0.1",
        metrics_port=0,
        log_level="WARNING",
        log_format="text",
    )


async def drive(
    service: WorkerService, feeder: JobFeeder, item: Workload, jobs: int
) -> tuple[dict[str, float], Session]:
    """Run the worker on this loop, feed it two warm-up jobs and then `jobs` profiled ones."""
    running = asyncio.create_task(service.run())
    while service.consumer is None or not service.consumer.bound:  # noqa: ASYNC110 - no event to wait on
        await asyncio.sleep(0.05)
    for _ in range(2):
        await feeder.one_job(item)
    feeder.recorder.clear()
    latencies: dict[str, float] = {}
    profiler = Profiler(interval=0.0005, async_mode="disabled")
    profiler.start()
    for _ in range(jobs):
        job_id, seconds = await feeder.one_job(item)
        latencies[job_id] = seconds
    loop_profile = profiler.stop()
    service.stop()
    await running
    return latencies, loop_profile


def render(session: Session) -> str:
    return ConsoleRenderer(unicode=False, color=False, show_all=False, time="seconds").render(session)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_worker", description=__doc__)
    parser.add_argument("--workload", default="thumb")
    parser.add_argument("--image", default="phone-ladybird.jpg")
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--output", type=Path, default=None, help="directory of the text profiles")
    args = parser.parse_args(argv)
    item = workload(args.workload)
    plan = tuple(image for image in IMAGE_PLAN if image.name == args.image)
    source = (ensure_images(plan) / args.image).read_bytes()
    recorder = Recorder()
    configure_libvips(concurrency=None)  # the service applies the worker's own setting
    with (
        tempfile.TemporaryDirectory(prefix="pixelmesh-bench-profile-") as temp,
        NatsServer.ephemeral(root=Path(temp)) as server,
        recorder.object_store_timed(),
    ):
        revision = PipelineRevision(
            namespace=BENCH_PIPELINE.namespace,
            name=BENCH_PIPELINE.name,
            generation=GENERATION,
            spec=pixelmesh_pipeline_spec(),
        )
        pipeline_file = Path(temp) / "pipeline.yaml"
        pipeline_file.write_text(revision.model_dump_json(by_alias=True, exclude_none=True))
        feeder = JobFeeder(server.url, source, recorder)
        try:
            service = WorkerService(
                worker_config(pipeline_file, server.url), revision, run=recorder.profiled_run
            )
            latencies, loop_profile = asyncio.run(drive(service, feeder, item, args.jobs))
        finally:
            feeder.close()

    summary = summarise(latencies, recorder.phases)
    profiles: Path = args.output or cache_root() / "profiles"
    profiles.mkdir(parents=True, exist_ok=True)
    stem = f"{args.workload}-{Path(args.image).stem}"
    combined = functools.reduce(Session.combine, recorder.pipeline_sessions)
    (profiles / f"{stem}-run_pipeline.txt").write_text(render(combined))
    (profiles / f"{stem}-event-loop.txt").write_text(render(loop_profile))
    document = {"workload": args.workload, "image": args.image, "jobs": args.jobs, "mean_ms": summary}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"profile-{stem}.json").write_text(json.dumps(document, indent=2) + "\n")
    print(
        f"{args.jobs} jobs of {args.workload} on {args.image} ({len(source) / 1e6:.1f} MB), mean ms per job:"
    )
    for name, value in summary.items():
        print(f"  {name:36s} {value:8.1f}")
    print(f"profiles: {profiles / f'{stem}-run_pipeline.txt'}, {profiles / f'{stem}-event-loop.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
