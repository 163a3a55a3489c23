"""`pixelmesh-worker`: the real worker path, from a job's publish to its result event.

Sources are stored in the region's object store once, before anything is measured (an upload is the
gateway's job and is measured there), in `SOURCE_CHUNK_BYTES` chunks. Each lane then publishes a
job for its next image with `Nats-Msg-Id = job id`, awaits the PubAck, and waits for the job's
result event, which the worker publishes right after writing the completion record; the worker
acks after that. So an image's
latency covers the JetStream round trip, the fetch, loading the source from the object store,
processing, storing every output in the outputs store, the completion record and the result.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
import uuid
from collections.abc import Sequence
from typing import Any

from nats.aio.msg import Msg

from bench.contenders.base import Contender, RunResult, SourceImage
from bench.contenders.pixelmesh_stack import GENERATION, REGION, PixelMeshStack, WorkerLayout
from bench.verify import OutputInfo, describe_output
from bench.workloads import BENCH_PIPELINE, Workload, variant_names
from pixelmesh.api import streams
from pixelmesh.api.messages import JobMessage, JobResult, JobStatus
from pixelmesh.objectstore import ObjectNotFoundError, put_object, read_object_info

NAME = "pixelmesh-worker"
RESULT_TIMEOUT_SECONDS = 300.0


class PixelMeshWorkerContender(Contender):
    """Jobs published straight to JetStream, results read from the result subject."""

    name = NAME

    def __init__(
        self,
        *,
        layout: WorkerLayout = WorkerLayout.THREADS,
        worker_env: dict[str, str] | None = None,
        in_flight: int = 1,
        name: str = NAME,
        worker_module: str = "pixelmesh.worker",
    ) -> None:
        self.name = name
        self.stack = PixelMeshStack(
            layout=layout, worker_env=worker_env, in_flight=in_flight, worker_module=worker_module
        )
        self._parallelism = 0
        self._source_keys: dict[str, tuple[str, int]] = {}
        self._waiting: dict[str, asyncio.Future[JobResult]] = {}
        self._counter = itertools.count()

    def start(self, parallelism: int) -> None:
        self._parallelism = parallelism
        self.stack.start(parallelism)
        assert self.stack.events is not None
        self.stack.events.call(self._subscribe())

    async def _subscribe(self) -> None:
        assert self.stack.nc is not None

        async def on_result(msg: Msg) -> None:
            result = JobResult.model_validate_json(msg.data)
            future = self._waiting.pop(result.job_id, None)
            if future is not None and not future.done():
                future.set_result(result)

        await self.stack.nc.subscribe(streams.result_wildcard(BENCH_PIPELINE), cb=on_result)
        await self.stack.nc.flush()

    def prepare(self, images: Sequence[SourceImage]) -> None:
        assert self.stack.events is not None
        self.stack.events.call(self._upload(images))

    async def _upload(self, images: Sequence[SourceImage]) -> None:
        assert self.stack.js is not None
        bucket = streams.sources_bucket(REGION)
        for image in images:
            if image.name in self._source_keys:
                continue
            data = image.path.read_bytes()
            key = hashlib.sha256(data).hexdigest()
            try:
                await read_object_info(
                    self.stack.js, stream=streams.object_stream(bucket), bucket=bucket, name=key
                )
            except ObjectNotFoundError:
                await put_object(self.stack.js, bucket=bucket, name=key, data=data)
            self._source_keys[image.name] = (key, len(data))

    def processes(self) -> dict[str, list[int]]:
        return self.stack.processes()

    async def _one(self, item: Workload, image: SourceImage) -> JobResult:
        assert self.stack.js is not None
        key, size = self._source_keys[image.name]
        job_id = f"bench-{uuid.uuid4().hex[:12]}-{next(self._counter)}"
        job = JobMessage(
            job_id=job_id,
            pipeline=BENCH_PIPELINE,
            generation=GENERATION,
            source_key=key,
            source_size=size,
            variants=variant_names(item),
            region=REGION,
        )
        future: asyncio.Future[JobResult] = asyncio.get_running_loop().create_future()
        self._waiting[job_id] = future
        await self.stack.js.publish(
            streams.job_subject(BENCH_PIPELINE, REGION),
            job.model_dump_json(by_alias=True, exclude_none=True).encode(),
            headers={"Nats-Msg-Id": job_id},
        )
        try:
            result = await asyncio.wait_for(future, RESULT_TIMEOUT_SECONDS)
        finally:
            self._waiting.pop(job_id, None)
        if result.status is not JobStatus.SUCCEEDED:
            raise RuntimeError(f"job {job_id} for {image.name} failed: {result.error}")
        return result

    async def _run(self, item: Workload, images: Sequence[SourceImage]) -> list[tuple[float, JobResult]]:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in range(len(images)):
            queue.put_nowait(index)
        timed: list[tuple[float, JobResult] | None] = [None] * len(images)

        async def lane() -> None:
            while not queue.empty():
                index = queue.get_nowait()
                started = time.perf_counter()
                result = await self._one(item, images[index])
                timed[index] = (time.perf_counter() - started, result)

        await asyncio.gather(*(lane() for _ in range(self._parallelism * self.stack.in_flight)))
        return [entry for entry in timed if entry is not None]

    async def _describe(self, results: list[JobResult]) -> list[list[OutputInfo]]:
        assert self.stack.js is not None
        store = await self.stack.js.object_store(streams.outputs_bucket(BENCH_PIPELINE, REGION))
        described = []
        for result in results:
            infos = []
            for ref in result.outputs:
                stored = await store.get(ref.key)
                infos.append(describe_output(ref.variant, stored.data or b""))
            described.append(infos)
        return described

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
            infos = self.stack.events.call(self._describe([result for _, result in timed]))
            outputs = {image.name: info for image, info in zip(images, infos, strict=True)}
        return RunResult(latencies=[seconds for seconds, _ in timed], outputs=outputs)

    def stop(self) -> None:
        self.stack.stop()
        self._source_keys.clear()

    def settings(self) -> dict[str, Any]:
        return {
            "worker_module": self.stack.worker_module,
            "layout": self.stack.layout.value,
            "jobs_in_flight_per_lane": self.stack.in_flight,
            "measured": "publish (PubAck awaited) to result event; completion record written before it",
            "worker_env": self.stack.worker_env,
        }
