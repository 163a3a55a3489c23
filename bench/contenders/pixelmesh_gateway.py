"""`pixelmesh-gateway`: submit-and-wait through the HTTP gateway with the Python SDK.

The full user path: each lane calls `Client.submit(pipeline, bytes, wait=..., variants=...)`, so an
image's latency covers the upload (the gateway hashes it and stores it in the object store), the
job's publish and PubAck, the worker's whole path, and the gateway noticing the result and
answering. The gateway is one `python -m pixelmesh.gateway` process in front of the same workers
and nats-server as `pixelmesh-worker`; it is measured with them.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import IO, Any

from bench.contenders.base import Contender, RunResult, SourceImage
from bench.contenders.pixelmesh_stack import REGION, PixelMeshStack, WorkerLayout
from bench.verify import OutputInfo, describe_output
from bench.workloads import BENCH_PIPELINE, Workload, variant_names
from pixelmesh.api.http import JobState, JobView
from pixelmesh.client.aio import Client
from pixelmesh.natsserver import free_port

NAME = "pixelmesh-gateway"
LOOPBACK = "127.0.0.1"
WAIT_SECONDS = 300.0


def _ready(port: int) -> bool:
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=1.0)
    try:
        connection.request("GET", "/readyz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


class PixelMeshGatewayContender(Contender):
    """The gateway, the workers and nats-server; lanes are SDK calls on one event loop."""

    name = NAME

    def __init__(
        self,
        *,
        layout: WorkerLayout = WorkerLayout.THREADS,
        worker_env: dict[str, str] | None = None,
        in_flight: int = 1,
    ) -> None:
        self.stack = PixelMeshStack(layout=layout, worker_env=worker_env, in_flight=in_flight)
        self._gateway: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._port = 0
        self._parallelism = 0
        self._client: Client | None = None
        self._sources: dict[str, bytes] = {}

    def start(self, parallelism: int, startup_timeout: float = 60.0) -> None:
        self._parallelism = parallelism
        self.stack.start(parallelism)
        assert self.stack.server is not None
        self._port = free_port()
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - kept for error messages until stop()
        environment = {
            "PIXELMESH_GATEWAY_HOST": LOOPBACK,
            "PIXELMESH_GATEWAY_PORT": str(self._port),
            "PIXELMESH_GATEWAY_REGIONS": f"{REGION}={self.stack.server.url}",
            "PIXELMESH_GATEWAY_HOME_REGION": REGION,
            "PIXELMESH_GATEWAY_PIPELINES": str(self.stack.pipeline_file),
            "PIXELMESH_GATEWAY_LOG_LEVEL": "WARNING",
            "PIXELMESH_GATEWAY_MAX_WAIT_SECONDS": str(WAIT_SECONDS),
        }
        self._gateway = subprocess.Popen(
            [sys.executable, "-m", "pixelmesh.gateway"],
            env={**os.environ, **environment},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.stack.work_dir,
            start_new_session=True,
        )
        deadline = time.monotonic() + startup_timeout
        while not _ready(self._port):
            if self._gateway.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the gateway did not become ready on port {self._port}:\n{self._log_text()}"
                )
            time.sleep(0.05)
        self._client = Client(f"http://{LOOPBACK}:{self._port}", request_timeout=WAIT_SECONDS + 30)

    def _log_text(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-3000:]

    def prepare(self, images: Sequence[SourceImage]) -> None:
        for image in images:
            if image.name not in self._sources:
                self._sources[image.name] = image.path.read_bytes()

    def processes(self) -> dict[str, list[int]]:
        found = self.stack.processes()
        if self._gateway is not None:
            found["gateway"] = [self._gateway.pid]
        return found

    async def _run(self, item: Workload, images: Sequence[SourceImage]) -> list[tuple[float, JobView]]:
        assert self._client is not None
        client = self._client
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in range(len(images)):
            queue.put_nowait(index)
        timed: list[tuple[float, JobView] | None] = [None] * len(images)
        variants = variant_names(item)

        async def lane() -> None:
            while not queue.empty():
                index = queue.get_nowait()
                source = self._sources[images[index].name]
                started = time.perf_counter()
                view = await client.submit(BENCH_PIPELINE, source, wait=WAIT_SECONDS, variants=variants)
                timed[index] = (time.perf_counter() - started, view)
                if view.state is not JobState.SUCCEEDED:
                    raise RuntimeError(f"job {view.job_id} for {images[index].name} ended {view.state}")

        await asyncio.gather(*(lane() for _ in range(self._parallelism * self.stack.in_flight)))
        return [entry for entry in timed if entry is not None]

    async def _describe(self, views: list[JobView]) -> list[list[OutputInfo]]:
        assert self._client is not None
        client = self._client
        return [
            [describe_output(link.variant, await client.fetch(link.href)) for link in view.outputs]
            for view in views
        ]

    def run(self, item: Workload, images: Sequence[SourceImage], *, describe: bool = False) -> RunResult:
        assert self.stack.events is not None
        self.prepare(images)
        try:
            timed = self.stack.events.call(self._run(item, images))
        except Exception:
            self.stack.check_workers()
            raise
        outputs = {}
        if describe:
            infos = self.stack.events.call(self._describe([view for _, view in timed]))
            outputs = {image.name: info for image, info in zip(images, infos, strict=True)}
        return RunResult(latencies=[seconds for seconds, _ in timed], outputs=outputs)

    def stop(self) -> None:
        if self._client is not None and self.stack.events is not None:
            self.stack.events.call(self._client.close(), timeout=10)
        self._client = None
        gateway, self._gateway = self._gateway, None
        if gateway is not None and gateway.poll() is None:
            gateway.send_signal(signal.SIGTERM)
            try:
                gateway.wait(timeout=15)
            except subprocess.TimeoutExpired:
                gateway.kill()
                gateway.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        self.stack.stop()

    def settings(self) -> dict[str, Any]:
        return {
            "layout": self.stack.layout.value,
            "jobs_in_flight_per_lane": self.stack.in_flight,
            "measured": "SDK submit(wait=...) of the source bytes to the finished job view",
            "worker_env": self.stack.worker_env,
        }
