"""A failed region's jobs are drained by its backup from the mirror, and skipped at failback.

Two regions on one server (the names, the mirror and the replicas are what is checked, not the
network): r1 accepts jobs while none of its workers run, r2 is its backup. The drain runs in r2
through its replicas of r1's job stream and sources; afterwards r1's own workers find every job
already done (r2's completion records are replicated into r1) and do none of them again.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

from nats.js import JetStreamContext

from pixelmesh.api import streams
from pixelmesh.api.messages import JobMessage, JobResult, JobStatus, PipelineRevision
from pixelmesh.api.routing import Drain, RegionWeight, RoutingEntry
from pixelmesh.natsserver import NatsServer
from pixelmesh.operator.clients.jetstream import (
    delete_consumer_if_present,
    ensure_consumer,
    ensure_mirror,
    ensure_pipeline_resources,
    ensure_region_buckets,
)
from pixelmesh.operator.jetstream import (
    RegionBucketSettings,
    build_drain_consumer,
    build_job_mirror,
)
from pixelmesh.worker.service import WorkerService
from tests import imagegen
from tests.integration.worker_support import (
    PIPELINE,
    QUICK,
    THREE_VARIANTS,
    running_worker,
    worker_config,
    write_pipeline_file,
)

JOBS = 24


async def eventually(check: Callable[[], Awaitable[bool]], what: str, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def write_drains(js: JetStreamContext, drains: list[Drain]) -> None:
    entry = RoutingEntry(pipeline=PIPELINE, regions=[RegionWeight(region="r2", weight=100)], drains=drains)
    kv = await js.key_value(streams.routing_bucket("r1"))
    await kv.put(streams.routing_key(PIPELINE), entry.model_dump_json(by_alias=True).encode())


async def stream_messages(js: JetStreamContext, name: str) -> int:
    return int((await js.stream_info(name)).state.messages or 0)


async def test_the_backup_drains_a_failed_regions_jobs_and_the_origin_skips_them_at_failback(
    js: JetStreamContext, nats_server: NatsServer, tmp_path: Path
) -> None:
    r1, r2 = replace(QUICK, region="r1"), replace(QUICK, region="r2")
    await ensure_region_buckets(js, RegionBucketSettings(region="r1", peers=("r2",), routing_origin="r1"))
    await ensure_region_buckets(
        js, RegionBucketSettings(region="r2", peers=("r1",), backed_up=("r1",), routing_origin="r1")
    )
    for settings in (r1, r2):
        await ensure_pipeline_resources(js, PIPELINE, settings)
    mirror = build_job_mirror(PIPELINE, "r1", r2)
    await ensure_mirror(js, mirror)

    # r1 accepts jobs; its workers are down.
    sources = await js.object_store(streams.sources_bucket("r1"))
    for i in range(JOBS):
        data = imagegen.photo_jpeg(120 + i, 90)
        key = hashlib.sha256(data).hexdigest()
        await sources.put(key, data)
        job = JobMessage(
            job_id=f"job-{i:03d}",
            pipeline=PIPELINE,
            generation=1,
            source_key=key,
            source_size=len(data),
            region="r1",
        )
        await js.publish(
            streams.job_subject(PIPELINE, "r1"),
            job.model_dump_json(by_alias=True, exclude_none=True).encode(),
            headers={"Nats-Msg-Id": job.job_id},
        )
    sources_replica = streams.replica_stream(streams.object_stream(streams.sources_bucket("r1")), "r2")

    async def mirrored() -> bool:
        return await stream_messages(js, mirror.name) == JOBS and await stream_messages(
            js, sources_replica
        ) == await stream_messages(js, streams.object_stream(streams.sources_bucket("r1")))

    await eventually(mirrored, "the mirror and the sources replica to catch up")

    # Failover: the operator opens the drain and names it in the routing table (written in r1, the
    # operator's region, and mirrored into r2); r2's running workers pick it up from there.
    drain = build_drain_consumer(PIPELINE, "r1", r2)
    await ensure_consumer(js, drain)
    await write_drains(js, [Drain(origin="r1", backup="r2", stream=drain.stream, consumer=drain.durable)])
    revision = PipelineRevision(
        namespace=PIPELINE.namespace, name=PIPELINE.name, generation=1, spec=THREE_VARIANTS
    )
    pipeline_file = write_pipeline_file(tmp_path, revision)
    r2_completions = streams.kv_stream(streams.completions_bucket("r2"))
    async with running_worker(
        WorkerService(
            worker_config(nats_server.url, pipeline_file, region="r2", drain_check_seconds=0.2), revision
        )
    ):

        async def drained() -> bool:
            return await stream_messages(js, r2_completions) >= JOBS

        await eventually(drained, "r2 to drain r1's jobs")
    kv = await js.key_value(streams.completions_bucket("r2"))
    results = [
        JobResult.model_validate_json((await kv.get(f"job-{i:03d}")).value or b"") for i in range(JOBS)
    ]
    assert {r.status for r in results} == {JobStatus.SUCCEEDED}
    assert {r.region for r in results} == {"r2"}
    assert {o.bucket for r in results for o in r.outputs} == {streams.outputs_bucket(PIPELINE, "r2")}

    # Failback: the drain closes, r1's workers come back and find every job done elsewhere.
    await write_drains(js, [])
    assert await delete_consumer_if_present(js, mirror.name, streams.drain_consumer(PIPELINE, "r1"))
    r1_completions = streams.kv_stream(streams.completions_bucket("r1"))
    replica_of_r2 = streams.replica_stream(r2_completions, "r1")

    async def replicated() -> bool:
        return await stream_messages(js, replica_of_r2) == JOBS

    await eventually(replicated, "r2's records to reach r1")
    async with running_worker(
        WorkerService(worker_config(nats_server.url, pipeline_file, region="r1"), revision)
    ):

        async def emptied() -> bool:
            return await stream_messages(js, streams.job_stream(PIPELINE, "r1")) == 0

        await eventually(emptied, "r1's workers to work through their queue")
    assert await stream_messages(js, r1_completions) == 0, "no job was processed again in r1"
