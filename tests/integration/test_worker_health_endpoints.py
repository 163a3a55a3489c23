"""The worker's HTTP endpoints: alive at once, ready only when connected and bound, metrics named
as documented, not ready while draining."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from nats.js import JetStreamContext

from pixelmesh.api.messages import PipelineRevision
from pixelmesh.natsserver import NatsServer
from pixelmesh.operator.clients.jetstream import ensure_pipeline_resources, ensure_region_buckets
from pixelmesh.operator.jetstream import RegionBucketSettings
from pixelmesh.worker.service import WorkerService
from tests import imagegen
from tests.fixtures.nats import submit_job
from tests.integration.worker_support import (
    PIPELINE,
    QUICK,
    THREE_VARIANTS,
    wait_for_records,
    worker_config,
    write_pipeline_file,
)


async def _get(http: aiohttp.ClientSession, port: int, path: str) -> tuple[int, str]:
    async with http.get(f"http://127.0.0.1:{port}{path}") as response:
        return response.status, await response.text()


async def test_probes_follow_the_worker_from_unprovisioned_to_ready_to_draining(
    nats_server: NatsServer, js: JetStreamContext, tmp_path: Path
) -> None:
    revision = PipelineRevision(
        namespace=PIPELINE.namespace, name=PIPELINE.name, generation=1, spec=THREE_VARIANTS
    )
    service = WorkerService(worker_config(nats_server.url, write_pipeline_file(tmp_path, revision)), revision)
    running = asyncio.create_task(service.run())
    await service.started.wait()
    port = service.health_port
    async with aiohttp.ClientSession() as http:
        assert (await _get(http, port, "/healthz"))[0] == 200
        await asyncio.sleep(0.3)
        status, body = await _get(http, port, "/readyz")
        assert status == 503, "not ready before the operator provisioned the pipeline"
        assert '"consumerBound": false' in body

        await ensure_region_buckets(js, RegionBucketSettings())
        await ensure_pipeline_resources(js, PIPELINE, QUICK)
        for _ in range(100):  # the worker retries binding every 2 s
            if (await _get(http, port, "/readyz"))[0] == 200:
                break
            await asyncio.sleep(0.05)
        assert (await _get(http, port, "/readyz"))[0] == 200

        await submit_job(js, PIPELINE, "measured", imagegen.photo_jpeg(640, 480))
        await wait_for_records(js, 1)
        status, metrics = await _get(http, port, "/metrics")
        assert status == 200
        assert (
            'pixelmesh_worker_jobs_total{outcome="succeeded",pipeline="test/thumbs",region="test"}' in metrics
        )
        for name in (
            "pixelmesh_worker_job_duration_seconds_bucket",
            "pixelmesh_worker_step_duration_seconds_bucket",
            "pixelmesh_worker_queue_wait_seconds_bucket",
            "pixelmesh_worker_bytes_in_total",
            "pixelmesh_worker_bytes_out_total",
            "pixelmesh_worker_jobs_in_flight",
            "pixelmesh_worker_libvips_memory_bytes",
            "pixelmesh_worker_nats_connected 1.0",
        ):
            assert name in metrics, name

        service.stop()
        assert (await _get(http, port, "/readyz"))[0] == 503, "a draining worker is not ready"
    assert await running == 0
