"""SIGTERM during load: the worker stops fetching, finishes or releases what it holds, and exits 0
with nothing left in flight; another worker then completes every remaining job, each exactly once."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from nats.js import JetStreamContext

from pixelmesh.api import streams
from pixelmesh.api.messages import JobStatus
from pixelmesh.natsserver import NatsServer
from pixelmesh.operator.jetstream import PipelineStreamSettings
from tests import imagegen
from tests.fixtures.nats import submit_job, upload_source
from tests.integration.worker_support import (
    WorkerProcess,
    completion_records,
    completion_writes,
    provision,
    settled_consumer,
    wait_for_records,
    write_pipeline_file,
)

JOBS = 60
LONG_ACK_WAIT = PipelineStreamSettings(ack_wait_seconds=60.0)
"""A job the drain left in flight would come back only after this; released ones come back at once."""


async def test_sigterm_during_load_exits_zero_and_leaves_no_job_in_flight(
    nats_server: NatsServer, js: JetStreamContext, tmp_path: Path
) -> None:
    revision = await provision(js, settings=LONG_ACK_WAIT)
    pipeline_file = write_pipeline_file(tmp_path, revision)
    source = imagegen.photo_jpeg(1600, 1200)
    key = await upload_source(js, source)
    for i in range(JOBS):
        await submit_job(js, revision.ref, f"job-{i:03d}", source, source_key=key)

    first = WorkerProcess(
        tmp_path, nats_server.url, pipeline_file, "leaving", PIXELMESH_THREADS="2", PIXELMESH_CONCURRENCY="6"
    )
    second = WorkerProcess(tmp_path, nats_server.url, pipeline_file, "staying", PIXELMESH_THREADS="2")
    try:
        first.start()
        await first.wait_ready()
        await wait_for_records(js, 5)
        signalled = time.monotonic()
        first.send(signal.SIGTERM)
        assert await first.wait(within=15) == 0, first.log()
        drain_seconds = time.monotonic() - signalled
        done_by_first = await completion_writes(js)
        assert done_by_first < JOBS, "SIGTERM came too late to interrupt the load"

        # Released jobs are nak'ed: the server counts them as ack-pending until it redelivers them,
        # which it does at once. A job left in flight would instead wait out the 60 s ack wait.
        stream = await js.stream_info(streams.job_stream(revision.ref, "local"))
        assert stream.state.messages == JOBS - done_by_first, "every job not completed is still queued"
        assert "draining" in first.log()
        assert "released unstarted" in first.log(), "jobs waiting for a libvips thread were given back"

        second.start()
        await second.wait_ready()
        await wait_for_records(js, JOBS, within=LONG_ACK_WAIT.ack_wait_seconds / 2)
        info = await settled_consumer(js)
    finally:
        first.stop()
        second.stop()

    print(f"\ndrained in {drain_seconds:.2f}s after completing {done_by_first} jobs")
    assert (info.num_pending, info.num_ack_pending) == (0, 0)
    records = await completion_records(js)
    assert sorted(records) == [f"job-{i:03d}" for i in range(JOBS)]
    assert all(r.status is JobStatus.SUCCEEDED for r in records.values())
    assert await completion_writes(js) == JOBS, "a job was processed by both workers"
    stream = await js.stream_info(streams.job_stream(revision.ref, "local"))
    assert stream.state.messages == 0, "the work queue is empty"
