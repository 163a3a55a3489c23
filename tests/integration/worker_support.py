"""What the worker's integration tests share: provisioning, workers in-process and as processes, and
readers of the records a worker leaves behind.

Counting is done on the server: the completion bucket keeps one record per job, and its stream's
last sequence number counts every write ever made, so "each job completed exactly once" is
`records == jobs` and `writes == jobs`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo

from pixelmesh.api import streams
from pixelmesh.api.messages import DeadLetter, JobResult, PipelineRef, PipelineRevision
from pixelmesh.api.pipeline import PipelineSpec
from pixelmesh.natsserver import die_with_parent, free_port
from pixelmesh.operator.clients.jetstream import ensure_pipeline_resources, ensure_region_buckets
from pixelmesh.operator.jetstream import PipelineStreamSettings, RegionBucketSettings
from pixelmesh.worker.config import WorkerConfig
from pixelmesh.worker.service import WorkerService

PIPELINE = PipelineRef(namespace="test", name="thumbs")
COMPLETIONS_STREAM = "KV_" + streams.completions_bucket("local")

THREE_VARIANTS = PipelineSpec.model_validate(
    {
        "variants": [
            {"name": "square", "steps": [{"thumbnail": {"width": 96, "height": 96, "crop": "centre"}}]},
            {
                "name": "medium",
                "steps": [{"resize": {"width": 320}}],
                "format": {"type": "webp", "quality": 70},
            },
            {"name": "tiny", "steps": [{"thumbnail": {"width": 48}}], "format": {"type": "png"}},
        ]
    }
)
"""Cropped JPEG square, a WebP resize, a PNG thumbnail: different steps and encoders per job."""

QUICK = PipelineStreamSettings(ack_wait_seconds=3.0, max_deliver=5, duplicate_window_seconds=60.0)


async def provision(
    js: JetStreamContext,
    spec: PipelineSpec = THREE_VARIANTS,
    settings: PipelineStreamSettings = QUICK,
    *,
    ref: PipelineRef = PIPELINE,
    generation: int = 1,
) -> PipelineRevision:
    """Create the region's buckets and the pipeline's stream, consumer and outputs store."""
    await ensure_region_buckets(js, RegionBucketSettings())
    await ensure_pipeline_resources(js, ref, settings)
    return PipelineRevision(namespace=ref.namespace, name=ref.name, generation=generation, spec=spec)


def write_pipeline_file(directory: Path, revision: PipelineRevision) -> Path:
    path = directory / "pipeline.yaml"
    path.write_text(yaml.safe_dump(revision.model_dump(mode="json", by_alias=True, exclude_none=True)))
    return path


def worker_config(nats_url: str, pipeline_file: Path, **overrides: Any) -> WorkerConfig:
    """A worker tuned for tests: quick polls, short retry delays, probes on a free port."""
    base = WorkerConfig(
        pipeline_file=pipeline_file,
        nats_urls=(nats_url,),
        region="local",
        worker_name="test-worker",
        fetch_timeout_seconds=0.5,
        retry_delays_seconds=(0.1, 0.2, 0.5),
        metrics_host="127.0.0.1",
        metrics_port=0,
        drain_grace_seconds=10.0,
        log_format="text",
    )
    return replace(base, **overrides)


@contextlib.asynccontextmanager
async def running_worker(service: WorkerService, *, within: float = 20.0) -> AsyncIterator[WorkerService]:
    """Run `service` on this event loop until the block ends, then drain it and require exit code 0."""
    task = asyncio.create_task(service.run())
    deadline = time.monotonic() + within
    while not service.readiness().ready:
        if task.done():
            task.result()
            raise AssertionError("the worker stopped before it became ready")
        assert time.monotonic() < deadline, "the worker did not become ready"
        await asyncio.sleep(0.02)
    try:
        yield service
    finally:
        service.stop()
        code = await asyncio.wait_for(task, timeout=service.config.drain_grace_seconds + 5)
    assert code == 0


class WorkerProcess:
    """`python -m pixelmesh.worker` as a child process, signalled by its PID only."""

    def __init__(self, work_dir: Path, nats_url: str, pipeline_file: Path, name: str, **env: str) -> None:
        self.name = name
        self.metrics_port = free_port()
        self.log_path = work_dir / f"{name}.log"
        self._env = {
            **os.environ,
            "PIXELMESH_NATS_URLS": nats_url,
            "PIXELMESH_PIPELINE_FILE": str(pipeline_file),
            "PIXELMESH_WORKER_NAME": name,
            "PIXELMESH_REGION": "local",
            "PIXELMESH_METRICS_HOST": "127.0.0.1",
            "PIXELMESH_METRICS_PORT": str(self.metrics_port),
            "PIXELMESH_FETCH_TIMEOUT_SECONDS": "0.5",
            "PIXELMESH_RETRY_DELAYS_SECONDS": "0.1,0.2,0.5",
            **env,
        }
        self._work_dir = work_dir
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            # cwd is the test's directory: run from the repository root, `-m` would put its
            # `operator/` folder ahead of the standard library's `operator` module.
            self._process = subprocess.Popen(
                [sys.executable, "-m", "pixelmesh.worker"],
                cwd=self._work_dir,
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - no orphaned workers if pytest is killed
            )

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    async def wait_ready(self, within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        url = f"http://127.0.0.1:{self.metrics_port}/readyz"
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                assert self._process is not None
                if self._process.poll() is not None:
                    raise AssertionError(f"worker {self.name} exited early:\n{self.log()}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(url) as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.05)
        raise AssertionError(f"worker {self.name} did not become ready:\n{self.log()}")

    def send(self, signum: signal.Signals) -> None:
        os.kill(self.pid, signum)

    async def wait(self, within: float) -> int:
        assert self._process is not None
        deadline = time.monotonic() + within
        while self._process.poll() is None:
            assert time.monotonic() < deadline, f"worker {self.name} did not exit in {within}s:\n{self.log()}"
            await asyncio.sleep(0.02)
        return self._process.returncode

    def stop(self) -> None:
        """Make sure the process is gone (SIGKILL by PID if it still runs)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


async def completion_writes(js: JetStreamContext) -> int:
    """Every completion record ever written (the KV stream's last sequence)."""
    return (await js.stream_info(COMPLETIONS_STREAM)).state.last_seq


async def wait_for_records(js: JetStreamContext, count: int, *, within: float = 60.0) -> None:
    """Until at least `count` jobs have a completion record."""
    deadline = time.monotonic() + within
    while True:
        with contextlib.suppress(Exception):  # the server may be restarting
            if (await js.stream_info(COMPLETIONS_STREAM)).state.messages >= count:
                return
        assert time.monotonic() < deadline, f"fewer than {count} jobs completed within {within}s"
        await asyncio.sleep(0.05)


async def completion_records(js: JetStreamContext) -> dict[str, JobResult]:
    bucket = streams.completions_bucket("local")
    kv = await js.key_value(bucket)
    # The keys from the stream's subjects: nats-py's `kv.keys()` watches with an ordered consumer,
    # which, just after a server restart, sometimes ends at once and finds no keys.
    prefix = f"$KV.{bucket}."
    info = await js.stream_info(COMPLETIONS_STREAM, subjects_filter=f"{prefix}>")
    records = {}
    for key in sorted(subject.removeprefix(prefix) for subject in info.state.subjects or {}):
        entry = await kv.get(key)
        assert entry.value is not None
        records[key] = JobResult.model_validate_json(entry.value)
    return records


async def dead_letter(js: JetStreamContext, key: str) -> DeadLetter:
    kv = await js.key_value(streams.dead_letters_bucket("local"))
    entry = await kv.get(key)
    assert entry.value is not None
    return DeadLetter.model_validate_json(entry.value)


async def read_output(js: JetStreamContext, key: str, ref: PipelineRef = PIPELINE) -> bytes:
    store = await js.object_store(streams.outputs_bucket(ref, "local"))
    return (await store.get(key)).data or b""


async def settled_consumer(
    js: JetStreamContext, ref: PipelineRef = PIPELINE, *, within: float = 5.0
) -> ConsumerInfo:
    """The worker consumer once it has been handed every message the stream stored and nothing is
    pending or awaiting an ack (fire-and-forget acks land late, and a message published a moment ago
    may not be counted as pending yet)."""
    deadline = time.monotonic() + within
    while True:
        stored = (await js.stream_info(streams.job_stream(ref, "local"))).state.last_seq
        info = await js.consumer_info(streams.job_stream(ref, "local"), streams.worker_consumer(ref))
        delivered = info.delivered.stream_seq if info.delivered is not None else 0
        if (info.num_pending or 0) == 0 and (info.num_ack_pending or 0) == 0 and delivered >= stored:
            return info
        if time.monotonic() > deadline:
            return info
        await asyncio.sleep(0.05)
