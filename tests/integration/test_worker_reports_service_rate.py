"""Workers report jobs served and busy time, from which the autoscaler derives a service rate."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from nats.js import JetStreamContext

from pixelmesh.api import streams
from pixelmesh.api.latency import LATENCY_BOUNDS_SECONDS, quantile
from pixelmesh.api.messages import WorkerReport
from pixelmesh.natsserver import NatsServer
from pixelmesh.operator.autoscaling.decision import service_rate
from pixelmesh.worker.service import WorkerService
from tests import imagegen
from tests.fixtures.nats import submit_job, upload_source
from tests.integration.worker_support import (
    PIPELINE,
    provision,
    running_worker,
    wait_for_records,
    worker_config,
    write_pipeline_file,
)

JOBS = 30


async def test_reports_count_served_jobs_and_busy_time(
    nats_server: NatsServer, js: JetStreamContext, tmp_path: Path
) -> None:
    revision = await provision(js)
    config = worker_config(
        nats_server.url, write_pipeline_file(tmp_path, revision), threads=2, stats_seconds=0.2
    )
    source = imagegen.photo_jpeg(640, 480)
    key = await upload_source(js, source)
    bucket = await js.key_value(streams.worker_stats_bucket("local"))

    async with running_worker(WorkerService(config, revision)):
        started = time.monotonic()
        for i in range(JOBS):
            await submit_job(js, PIPELINE, f"rate-{i}", source, source_key=key)
        await wait_for_records(js, JOBS)
        elapsed = time.monotonic() - started

        async def latest() -> WorkerReport:
            entry = await bucket.get(streams.worker_stats_key(PIPELINE, config.worker_name))
            assert entry.value is not None
            return WorkerReport.model_validate_json(entry.value)

        deadline = time.monotonic() + 10
        report = await latest()
        while report.served < JOBS and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            report = await latest()

    assert report.served == JOBS
    assert report.pipeline == PIPELINE
    assert report.region == "local"
    assert 0.0 < report.busy_seconds <= elapsed + 1.0
    rate = service_rate({report.worker: (float(report.served), report.busy_seconds)})
    assert rate is not None
    assert rate >= JOBS / (elapsed + 1.0), "busy time never exceeds the wall time the jobs took"
    # Every job is counted by its latency from the accept, none above the whole run's time.
    assert sum(report.latency_counts) == JOBS
    p99 = quantile(report.latency_counts, 0.99)
    assert p99 is not None
    assert 0.0 < p99 <= next(b for b in LATENCY_BOUNDS_SECONDS if b >= elapsed + 1.0)
