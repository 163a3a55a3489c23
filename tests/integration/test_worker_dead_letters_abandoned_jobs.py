"""A job nobody answers (its workers crashed or hung on it every time) runs out of deliveries on the
server; a worker turns the server's advisory into a dead-letter record and a failed result, and
takes the job off the queue."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from pixelmesh.api import streams
from pixelmesh.api.messages import FailureReason, JobStatus
from pixelmesh.natsserver import NatsServer
from pixelmesh.operator.jetstream import PipelineStreamSettings
from pixelmesh.worker.consumer import JobConsumer
from pixelmesh.worker.metrics import WorkerMetrics
from tests import imagegen
from tests.fixtures.nats import submit_job
from tests.integration.worker_support import (
    completion_records,
    dead_letter,
    provision,
    wait_for_records,
    worker_config,
    write_pipeline_file,
)

TWO_SHORT_DELIVERIES = PipelineStreamSettings(
    ack_wait_seconds=0.5, max_deliver=2, duplicate_window_seconds=10
)


async def test_a_job_that_exhausts_its_deliveries_unanswered_is_dead_lettered(
    nats_server: NatsServer, nats_client: NatsClient, js: JetStreamContext, tmp_path: Path
) -> None:
    revision = await provision(js, settings=TWO_SHORT_DELIVERIES)
    config = worker_config(nats_server.url, write_pipeline_file(tmp_path, revision))
    with ThreadPoolExecutor(1) as executor:
        # A bound worker that fetches nothing: it only listens for the advisory.
        watcher = JobConsumer(
            config=config,
            revision=revision,
            nc=nats_client,
            executor=executor,
            metrics=WorkerMetrics(str(revision.ref), "test"),
        )
        await watcher.bind()
        await submit_job(js, revision.ref, "abandoned", imagegen.photo_jpeg(64, 48))

        # A "worker" that takes the job and never answers, twice.
        crashing = await js.pull_subscribe_bind(
            durable=streams.worker_consumer(revision.ref), stream=streams.job_stream(revision.ref, "local")
        )
        for attempt in (1, 2):
            (msg,) = await crashing.fetch(1, timeout=5)
            assert msg.metadata.num_delivered == attempt
        # The server notices the exhausted job when it next looks for one to deliver.
        third = asyncio.ensure_future(crashing.fetch(1, timeout=3))
        await wait_for_records(js, 1, within=10)
        with pytest.raises(TimeoutError):
            await third
        watcher.stop()
        await watcher.finish(grace=1)
        await crashing.unsubscribe()

    record = (await completion_records(js))["abandoned"]
    assert record.status is JobStatus.FAILED
    assert record.error is not None
    assert record.error.reason is FailureReason.MAX_DELIVERIES
    letter = await dead_letter(js, "abandoned")
    assert letter.attempts == 2
    assert letter.job is not None
    assert letter.job.job_id == "abandoned"
    for _ in range(50):
        if (await js.stream_info(streams.job_stream(revision.ref, "local"))).state.messages == 0:
            break
        await asyncio.sleep(0.05)
    assert (await js.stream_info(streams.job_stream(revision.ref, "local"))).state.messages == 0
