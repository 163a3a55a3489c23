"""`kill -9` of a worker process in the middle of a batch: another worker completes every job, none
is lost, and the outputs are byte-identical to a clean run."""

from __future__ import annotations

import asyncio
import hashlib
import signal
from pathlib import Path

from nats.js import JetStreamContext

from pixelmesh.api.messages import JobStatus
from pixelmesh.natsserver import NatsServer
from pixelmesh.worker.pipeline import run_pipeline
from tests import imagegen
from tests.fixtures.nats import submit_job, upload_source
from tests.integration.worker_support import (
    WorkerProcess,
    completion_records,
    completion_writes,
    provision,
    read_output,
    settled_consumer,
    wait_for_records,
    write_pipeline_file,
)

SOURCE_SIZES = [(1600, 1200), (1200, 1600), (1400, 1000), (1000, 1000)]
JOBS = 60


async def test_jobs_of_a_killed_worker_are_completed_by_another_with_identical_outputs(
    nats_server: NatsServer, js: JetStreamContext, tmp_path: Path
) -> None:
    revision = await provision(js)
    pipeline_file = write_pipeline_file(tmp_path, revision)
    sources = [imagegen.photo_jpeg(w, h) for w, h in SOURCE_SIZES]
    keys = [await upload_source(js, data) for data in sources]
    for i in range(JOBS):
        n = i % len(sources)
        await submit_job(js, revision.ref, f"job-{i:03d}", sources[n], source_key=keys[n])

    first = WorkerProcess(tmp_path, nats_server.url, pipeline_file, "doomed", PIXELMESH_THREADS="2")
    second = WorkerProcess(tmp_path, nats_server.url, pipeline_file, "rescuer", PIXELMESH_THREADS="2")
    try:
        first.start()
        await first.wait_ready()
        await wait_for_records(js, 5)
        first.send(signal.SIGKILL)
        assert await first.wait(within=5) == -signal.SIGKILL
        done_by_first = await completion_writes(js)
        assert done_by_first < JOBS, "the kill came too late to interrupt the batch"

        second.start()
        await second.wait_ready()
        await wait_for_records(js, JOBS, within=120)
        consumer = await settled_consumer(js)
    finally:
        first.stop()
        second.stop()

    assert (consumer.num_pending, consumer.num_ack_pending) == (0, 0)
    records = await completion_records(js)
    assert sorted(records) == [f"job-{i:03d}" for i in range(JOBS)]
    assert all(r.status is JobStatus.SUCCEEDED for r in records.values())
    assert {r.worker for r in records.values()} == {"doomed", "rescuer"}
    assert any(r.attempts > 1 for r in records.values()), "jobs in flight at the kill were redelivered"

    # A clean run of the same sources, in this process, gives the very same bytes.
    clean = {
        keys[n]: {out.variant: out.data for out in await asyncio.to_thread(run_pipeline, revision.spec, data)}
        for n, data in enumerate(sources)
    }
    for record in records.values():
        for ref in record.outputs:
            stored = await read_output(js, ref.key)
            assert stored == clean[record.source_key][ref.variant], (record.job_id, ref.variant)
            assert hashlib.sha256(stored).hexdigest() == ref.sha256
