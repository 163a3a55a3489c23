"""Many jobs with several variants each: every one completes exactly once, with the right outputs."""

from __future__ import annotations

import time
from pathlib import Path

import pyvips
from nats.js import JetStreamContext

from pixelmesh.api.messages import JobStatus
from pixelmesh.api.pipeline import OutputType
from pixelmesh.natsserver import NatsServer
from pixelmesh.worker.service import WorkerService
from tests import imagegen
from tests.fixtures.nats import submit_job, upload_source
from tests.integration.worker_support import (
    completion_records,
    completion_writes,
    provision,
    read_output,
    running_worker,
    settled_consumer,
    wait_for_records,
    worker_config,
    write_pipeline_file,
)

SOURCE_SIZES = [
    (640, 480),
    (800, 600),
    (480, 640),
    (1024, 768),
    (700, 500),
    (512, 512),
    (900, 400),
    (360, 640),
]
JOBS = 200


def expected_sizes(width: int, height: int) -> dict[str, tuple[int, int]]:
    return {
        "square": (96, 96),
        "medium": (320, round(height * 320 / width)),
        "tiny": (48, round(height * 48 / width)),
    }


async def test_two_hundred_jobs_each_complete_exactly_once_with_requested_outputs(
    nats_server: NatsServer, js: JetStreamContext, tmp_path: Path
) -> None:
    revision = await provision(js)
    config = worker_config(nats_server.url, write_pipeline_file(tmp_path, revision), threads=2)
    sources = [imagegen.photo_jpeg(w, h) for w, h in SOURCE_SIZES]
    keys = [await upload_source(js, data) for data in sources]

    async with running_worker(WorkerService(config, revision)):
        started = time.monotonic()
        for i in range(JOBS):
            n = i % len(sources)
            await submit_job(js, revision.ref, f"job-{i:04d}", sources[n], source_key=keys[n])
        await wait_for_records(js, JOBS, within=120)
        elapsed = time.monotonic() - started
    print(f"\n{JOBS} jobs x 3 variants in {elapsed:.2f}s: {JOBS / elapsed:.1f} jobs/s")

    records = await completion_records(js)
    assert sorted(records) == [f"job-{i:04d}" for i in range(JOBS)]
    assert await completion_writes(js) == JOBS, "a job's completion record was written more than once"
    consumer = await settled_consumer(js)
    assert (consumer.num_pending, consumer.num_ack_pending, consumer.num_redelivered) == (0, 0, 0)

    for job_id, record in records.items():
        n = int(job_id.removeprefix("job-")) % len(sources)
        assert record.status is JobStatus.SUCCEEDED, record.error
        assert record.source_key == keys[n]
        sizes = {ref.variant: (ref.width, ref.height) for ref in record.outputs}
        for variant, (width, height) in expected_sizes(*SOURCE_SIZES[n]).items():
            got_w, got_h = sizes[variant]
            assert got_w == width, (job_id, variant, sizes[variant])
            assert abs(got_h - height) <= 1, (job_id, variant, sizes[variant])
        assert {ref.variant: ref.format for ref in record.outputs} == {
            "square": OutputType.JPEG,
            "medium": OutputType.WEBP,
            "tiny": OutputType.PNG,
        }

    # The stored bytes are what the records say: decode one job per source and compare.
    loaders = {OutputType.JPEG: "jpegload", OutputType.WEBP: "webpload", OutputType.PNG: "pngload"}
    for job_id in [f"job-{i:04d}" for i in range(len(sources))]:
        for ref in records[job_id].outputs:
            data = await read_output(js, ref.key)
            assert len(data) == ref.size
            image = pyvips.Image.new_from_buffer(data, "")
            assert image.get("vips-loader").startswith(loaders[ref.format])
            assert (image.width, image.height) == (ref.width, ref.height)
            assert image.bands == 3
            assert 40 < image.avg() < 220, "an output is blank"
