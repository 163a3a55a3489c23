"""Restarting the nats-server (same store, same port) in the middle of a load: the worker reconnects
by itself and every accepted job completes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from nats.js import JetStreamContext

from pixelmesh.api.messages import JobStatus
from pixelmesh.natsserver import NatsServer
from pixelmesh.worker.service import WorkerService
from tests import imagegen
from tests.fixtures.nats import submit_job, upload_source
from tests.integration.worker_support import (
    completion_records,
    provision,
    running_worker,
    settled_consumer,
    wait_for_records,
    worker_config,
    write_pipeline_file,
)

BEFORE, AFTER = 60, 30


@pytest.mark.parametrize("hard", [False, True], ids=["sigterm", "sigkill"])
async def test_worker_reconnects_after_a_nats_restart_and_every_accepted_job_completes(
    nats_server: NatsServer, js: JetStreamContext, tmp_path: Path, hard: bool
) -> None:
    revision = await provision(js)
    config = worker_config(nats_server.url, write_pipeline_file(tmp_path, revision), threads=2)
    source = imagegen.photo_jpeg(800, 600)
    key = await upload_source(js, source)
    accepted: list[str] = []

    async with running_worker(WorkerService(config, revision)) as worker:
        for i in range(BEFORE):
            await submit_job(js, revision.ref, f"before-{i:03d}", source, source_key=key)
            accepted.append(f"before-{i:03d}")
        await wait_for_records(js, 10)
        port, pid = nats_server.port, nats_server.pid
        await nats_server.arestart(hard=hard)
        assert (nats_server.port, nats_server.pid != pid) == (port, True)

        # Publish more once the test's own client is back; only acknowledged publishes count as accepted.
        for i in range(AFTER):
            job_id = f"after-{i:03d}"
            for _ in range(100):
                try:
                    await submit_job(js, revision.ref, job_id, source, source_key=key)
                except Exception:  # the client is still reconnecting
                    await asyncio.sleep(0.1)
                else:
                    accepted.append(job_id)
                    break
        await wait_for_records(js, len(accepted), within=120)
        assert worker.readiness().ready
        consumer = await settled_consumer(js)

    assert (consumer.num_pending, consumer.num_ack_pending) == (0, 0)
    records = await completion_records(js)
    assert sorted(records) == sorted(accepted)
    assert len(accepted) == BEFORE + AFTER
    assert all(r.status is JobStatus.SUCCEEDED for r in records.values())
