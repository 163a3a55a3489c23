"""Hostile and broken inputs fail cleanly with the right reason and a dead-letter record, while the
worker stays up and completes the good jobs queued behind them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from pixelmesh.api import streams
from pixelmesh.api.messages import FailureReason, JobResult, JobStatus
from pixelmesh.api.pipeline import PipelineSpec
from pixelmesh.natsserver import NatsServer
from pixelmesh.worker.errors import RetryableError
from pixelmesh.worker.service import WorkerService
from tests import imagegen
from tests.fixtures.images import bad_input_corpus, corpus_limits
from tests.fixtures.nats import submit_job
from tests.integration.worker_support import (
    QUICK,
    THREE_VARIANTS,
    completion_records,
    dead_letter,
    provision,
    running_worker,
    settled_consumer,
    wait_for_records,
    worker_config,
    write_pipeline_file,
)

LIMITED = PipelineSpec.model_validate(
    {
        **THREE_VARIANTS.model_dump(mode="json", by_alias=True, exclude_none=True),
        "input": corpus_limits().to_wire(),
    }
)

CORPUS = {bad.name.replace(".", "-"): bad for bad in bad_input_corpus()}
"""The bad-input corpus by job id (a job id has no dots)."""
GOOD_BEHIND = 12


async def test_bad_inputs_fail_with_their_reason_and_good_jobs_behind_them_complete(
    nats_server: NatsServer, js: JetStreamContext, tmp_path: Path
) -> None:
    revision = await provision(js, LIMITED)
    config = worker_config(nats_server.url, write_pipeline_file(tmp_path, revision), threads=2)
    good = imagegen.photo_jpeg(320, 240)

    async with running_worker(WorkerService(config, revision)) as worker:
        for name, bad in CORPUS.items():
            await submit_job(js, revision.ref, name, bad.data)
        for i in range(GOOD_BEHIND):
            await submit_job(js, revision.ref, f"good-{i}", good)
        await wait_for_records(js, len(CORPUS) + GOOD_BEHIND)
        assert worker.readiness().ready, "the worker should still be up and ready"

    records = await completion_records(js)
    for name, bad in CORPUS.items():
        record = records[name]
        assert record.status is JobStatus.FAILED
        assert record.error is not None
        assert record.error.reason is bad.reason, (name, record.error)
        assert record.outputs == []
        letter = await dead_letter(js, name)
        assert letter.job is not None
        assert letter.job.job_id == name
        assert letter.error.reason is bad.reason
        assert letter.attempts == 1, "a permanent failure is not retried"
    for i in range(GOOD_BEHIND):
        assert records[f"good-{i}"].status is JobStatus.SUCCEEDED
    consumer = await settled_consumer(js)
    assert (consumer.num_pending, consumer.num_ack_pending) == (0, 0)


async def test_failure_results_are_published_as_events(
    nats_server: NatsServer, nats_client: NatsClient, js: JetStreamContext, tmp_path: Path
) -> None:
    revision = await provision(js, LIMITED)
    config = worker_config(nats_server.url, write_pipeline_file(tmp_path, revision))
    events: list[JobResult] = []

    async def collect(msg: Msg) -> None:
        events.append(JobResult.model_validate_json(msg.data))

    subscription = await nats_client.subscribe(streams.result_wildcard(revision.ref), cb=collect)
    async with running_worker(WorkerService(config, revision)):
        await submit_job(js, revision.ref, "bomb", imagegen.png_bomb())
        await submit_job(js, revision.ref, "fine", imagegen.photo_jpeg(320, 240))
        await wait_for_records(js, 2)
    await subscription.unsubscribe()
    by_id = {event.job_id: event for event in events}
    assert set(by_id) == {"bomb", "fine"}
    assert by_id["bomb"].error is not None
    assert by_id["bomb"].error.reason is FailureReason.TOO_MANY_PIXELS
    assert by_id["fine"].status is JobStatus.SUCCEEDED


async def test_a_message_that_is_not_a_job_is_dead_lettered_with_its_text(
    nats_server: NatsServer, js: JetStreamContext, tmp_path: Path
) -> None:
    revision = await provision(js)
    config = worker_config(nats_server.url, write_pipeline_file(tmp_path, revision))
    async with running_worker(WorkerService(config, revision)):
        await js.publish(
            streams.job_subject(revision.ref, "local"),
            b'{"v": 7, "hello": "world"}',
            headers={"Nats-Msg-Id": "garbage-1"},
        )
        await submit_job(js, revision.ref, "after-garbage", imagegen.photo_jpeg(320, 240))
        await wait_for_records(js, 1)
        consumer = await settled_consumer(js)
    assert (consumer.num_pending, consumer.num_ack_pending) == (0, 0)
    letter = await dead_letter(js, "garbage-1")
    assert letter.job is None
    assert letter.raw == '{"v": 7, "hello": "world"}'
    assert letter.error.reason is FailureReason.INVALID_JOB
    assert (await completion_records(js))["after-garbage"].status is JobStatus.SUCCEEDED


async def test_a_job_failing_transiently_every_time_is_dead_lettered_after_max_deliveries(
    nats_server: NatsServer, js: JetStreamContext, tmp_path: Path
) -> None:
    settings = dataclasses.replace(QUICK, max_deliver=3)
    revision = await provision(js, settings=settings)
    config = worker_config(nats_server.url, write_pipeline_file(tmp_path, revision))
    attempts: list[int] = []

    def flaky(*_: object, **__: object) -> list[object]:
        attempts.append(1)
        raise RetryableError("the output store is overloaded", delay_seconds=0.05)

    async with running_worker(WorkerService(config, revision, run=flaky)):
        await submit_job(js, revision.ref, "unlucky", imagegen.photo_jpeg(320, 240))
        await wait_for_records(js, 1)
    assert len(attempts) == 3
    record = (await completion_records(js))["unlucky"]
    assert record.status is JobStatus.FAILED
    assert record.error is not None
    assert record.error.reason is FailureReason.MAX_DELIVERIES
    assert "overloaded" in record.error.message
    letter = await dead_letter(js, "unlucky")
    assert letter.attempts == 3
    consumer = await settled_consumer(js)
    assert (consumer.num_pending, consumer.num_ack_pending) == (0, 0)
