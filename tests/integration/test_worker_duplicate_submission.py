"""Submitting the same job id twice does the work once: the stream collapses a resend within its
duplicate window, and the completion record short-circuits one that arrives later."""

from __future__ import annotations

import asyncio
from pathlib import Path

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from pixelmesh.api import streams
from pixelmesh.api.messages import JobStatus
from pixelmesh.natsserver import NatsServer
from pixelmesh.operator.jetstream import PipelineStreamSettings
from pixelmesh.worker.pipeline import run_pipeline
from pixelmesh.worker.service import WorkerService
from tests import imagegen
from tests.fixtures.nats import publish_job, submit_job
from tests.integration.worker_support import (
    completion_records,
    completion_writes,
    provision,
    running_worker,
    settled_consumer,
    wait_for_records,
    worker_config,
    write_pipeline_file,
)

SHORT_WINDOW = PipelineStreamSettings(ack_wait_seconds=3.0, duplicate_window_seconds=1.0)


async def test_a_job_id_submitted_twice_is_processed_once(
    nats_server: NatsServer, nats_client: NatsClient, js: JetStreamContext, tmp_path: Path
) -> None:
    revision = await provision(js, settings=SHORT_WINDOW)
    config = worker_config(nats_server.url, write_pipeline_file(tmp_path, revision))
    ran: list[int] = []
    results: list[str] = []

    async def count_result(msg: Msg) -> None:
        results.append(msg.subject)

    await nats_client.subscribe(streams.result_wildcard(revision.ref), cb=count_result)

    def counting_run(*args: object, **kwargs: object) -> object:
        ran.append(1)
        return run_pipeline(*args, **kwargs)  # type: ignore[arg-type]

    async with running_worker(WorkerService(config, revision, run=counting_run)):
        job = await submit_job(js, revision.ref, "twice", imagegen.photo_jpeg(320, 240))
        resend = await publish_job(js, job)
        assert resend.duplicate, "a resend within the window is collapsed by the stream"
        await wait_for_records(js, 1)

        # After the window the stream accepts the id again; the completion record stops the work.
        await asyncio.sleep(SHORT_WINDOW.duplicate_window_seconds + 0.2)
        late = await publish_job(js, job)
        assert not late.duplicate
        consumer = await settled_consumer(js)
        assert (consumer.num_pending, consumer.num_ack_pending) == (0, 0)
        assert consumer.delivered is not None
        assert consumer.delivered.stream_seq == late.seq, "the late resend was delivered and acked"

    assert len(ran) == 1
    assert await completion_writes(js) == 1
    assert (await completion_records(js))["twice"].status is JobStatus.SUCCEEDED
    assert results == [streams.result_subject(revision.ref, "twice")]
