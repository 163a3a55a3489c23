"""Provisioning against a real nats-server: create once, never recreate, update in place, refuse
changes that would need a recreate."""

from __future__ import annotations

import pytest
from nats.js import JetStreamContext

from pixelmesh.api import streams
from pixelmesh.api.messages import PipelineRef
from pixelmesh.operator.clients.jetstream import (
    ProvisioningConflictError,
    delete_pipeline_resources,
    ensure_pipeline_resources,
    ensure_region_buckets,
)
from pixelmesh.operator.jetstream import ChangeKind, PipelineStreamSettings, RegionBucketSettings, Storage

REF = PipelineRef(namespace="media", name="thumbs.v2")


async def test_pipeline_resources_are_created_once_and_left_alone_when_unchanged(
    js: JetStreamContext,
) -> None:
    settings = PipelineStreamSettings(ack_wait_seconds=20, max_deliver=4)
    first = await ensure_pipeline_resources(js, REF, settings)
    assert {c.kind for c in first.changes.values()} == {ChangeKind.CREATE}
    await js.publish(streams.job_subject(REF), b"{}", headers={"Nats-Msg-Id": "a"})

    again = await ensure_pipeline_resources(js, REF, settings)
    assert not again.changed
    info = await js.stream_info(streams.job_stream(REF))
    assert info.state.messages == 1, "the stream was not recreated"
    consumer = await js.consumer_info(streams.job_stream(REF), streams.worker_consumer(REF))
    assert (consumer.config.ack_wait, consumer.config.max_deliver) == (20, 4)
    assert consumer.config.ack_policy == "explicit"


async def test_changed_retry_settings_update_the_consumer_in_place(js: JetStreamContext) -> None:
    await ensure_pipeline_resources(js, REF, PipelineStreamSettings())
    changed = PipelineStreamSettings(ack_wait_seconds=90, max_ack_pending=7, backoff_seconds=(15.0, 60.0))
    report = await ensure_pipeline_resources(js, REF, changed)
    assert report.changes[streams.worker_consumer(REF)].kind is ChangeKind.UPDATE
    assert report.changes[streams.job_stream(REF)].kind is ChangeKind.NONE
    consumer = await js.consumer_info(streams.job_stream(REF), streams.worker_consumer(REF))
    assert consumer.config.max_ack_pending == 7
    assert consumer.config.backoff == [15.0, 60.0]
    assert not (await ensure_pipeline_resources(js, REF, changed)).changed, (
        "a backoff list does not look like drift"
    )


async def test_a_storage_change_is_refused_instead_of_recreating_the_job_stream(js: JetStreamContext) -> None:
    await ensure_pipeline_resources(js, REF, PipelineStreamSettings())
    await js.publish(streams.job_subject(REF), b"{}", headers={"Nats-Msg-Id": "keep-me"})
    with pytest.raises(ProvisioningConflictError, match="storage"):
        await ensure_pipeline_resources(js, REF, PipelineStreamSettings(storage=Storage.MEMORY))
    assert (await js.stream_info(streams.job_stream(REF))).state.messages == 1


async def test_region_buckets_are_created_and_their_ttl_updated(js: JetStreamContext) -> None:
    created = await ensure_region_buckets(js, RegionBucketSettings())
    assert {c.kind for c in created.changes.values()} == {ChangeKind.CREATE}
    completions = await js.key_value(streams.COMPLETIONS_BUCKET)
    await completions.put("job-1", b"done")
    updated = await ensure_region_buckets(js, RegionBucketSettings(completions_ttl_seconds=60))
    assert updated.changes[streams.COMPLETIONS_BUCKET].kind is ChangeKind.UPDATE
    assert (await completions.get("job-1")).value == b"done"
    assert (await completions.status()).ttl == 60
    assert not (await ensure_region_buckets(js, RegionBucketSettings(completions_ttl_seconds=60))).changed


async def test_deleting_pipeline_resources_twice_is_fine(js: JetStreamContext) -> None:
    await ensure_pipeline_resources(js, REF, PipelineStreamSettings())
    await delete_pipeline_resources(js, REF)
    await delete_pipeline_resources(js, REF)
    names = [info.config.name for info in await js.streams_info()]
    assert streams.job_stream(REF) not in names
    assert "OBJ_" + streams.outputs_bucket(REF) not in names
