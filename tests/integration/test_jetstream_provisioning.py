"""Provisioning against a real nats-server: create once, never recreate, update in place, refuse
changes that would need a recreate."""

from __future__ import annotations

import asyncio

import pytest
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import KeyNotFoundError, NoStreamResponseError

from pixelmesh.api import streams
from pixelmesh.api.messages import PipelineRef
from pixelmesh.operator.clients.jetstream import (
    ProvisioningConflictError,
    delete_pipeline_resources,
    ensure_pipeline_resources,
    ensure_region_buckets,
)
from pixelmesh.operator.jetstream import ChangeKind, PipelineStreamSettings, RegionBucketSettings, Storage
from pixelmesh.records import CompletionLookup

REF = PipelineRef(namespace="media", name="thumbs.v2")


async def test_pipeline_resources_are_created_once_and_left_alone_when_unchanged(
    js: JetStreamContext,
) -> None:
    settings = PipelineStreamSettings(ack_wait_seconds=20, max_deliver=4)
    first = await ensure_pipeline_resources(js, REF, settings)
    assert {c.kind for c in first.changes.values()} == {ChangeKind.CREATE}
    await js.publish(streams.job_subject(REF, "local"), b"{}", headers={"Nats-Msg-Id": "a"})

    again = await ensure_pipeline_resources(js, REF, settings)
    assert not again.changed
    info = await js.stream_info(streams.job_stream(REF, "local"))
    assert info.state.messages == 1, "the stream was not recreated"
    consumer = await js.consumer_info(streams.job_stream(REF, "local"), streams.worker_consumer(REF))
    assert (consumer.config.ack_wait, consumer.config.max_deliver) == (20, 4)
    assert consumer.config.ack_policy == "explicit"


async def test_changed_retry_settings_update_the_consumer_in_place(js: JetStreamContext) -> None:
    await ensure_pipeline_resources(js, REF, PipelineStreamSettings())
    changed = PipelineStreamSettings(ack_wait_seconds=90, max_ack_pending=7, backoff_seconds=(15.0, 60.0))
    report = await ensure_pipeline_resources(js, REF, changed)
    assert report.changes[streams.worker_consumer(REF)].kind is ChangeKind.UPDATE
    assert report.changes[streams.job_stream(REF, "local")].kind is ChangeKind.NONE
    consumer = await js.consumer_info(streams.job_stream(REF, "local"), streams.worker_consumer(REF))
    assert consumer.config.max_ack_pending == 7
    assert consumer.config.backoff == [15.0, 60.0]
    assert not (await ensure_pipeline_resources(js, REF, changed)).changed, (
        "a backoff list does not look like drift"
    )


async def test_a_storage_change_is_refused_instead_of_recreating_the_job_stream(js: JetStreamContext) -> None:
    await ensure_pipeline_resources(js, REF, PipelineStreamSettings())
    await js.publish(streams.job_subject(REF, "local"), b"{}", headers={"Nats-Msg-Id": "keep-me"})
    with pytest.raises(ProvisioningConflictError, match="storage"):
        await ensure_pipeline_resources(js, REF, PipelineStreamSettings(storage=Storage.MEMORY))
    assert (await js.stream_info(streams.job_stream(REF, "local"))).state.messages == 1


async def test_region_buckets_are_created_and_their_ttl_updated(js: JetStreamContext) -> None:
    created = await ensure_region_buckets(js, RegionBucketSettings())
    assert {c.kind for c in created.changes.values()} == {ChangeKind.CREATE}
    completions = await js.key_value(streams.completions_bucket("local"))
    await completions.put("job-1", b"done")
    updated = await ensure_region_buckets(js, RegionBucketSettings(completions_ttl_seconds=60))
    assert updated.changes[streams.completions_bucket("local")].kind is ChangeKind.UPDATE
    assert (await completions.get("job-1")).value == b"done"
    assert (await completions.status()).ttl == 60
    assert not (await ensure_region_buckets(js, RegionBucketSettings(completions_ttl_seconds=60))).changed


async def test_deleting_pipeline_resources_twice_is_fine(js: JetStreamContext) -> None:
    await ensure_pipeline_resources(js, REF, PipelineStreamSettings())
    await delete_pipeline_resources(js, REF, "local")
    await delete_pipeline_resources(js, REF, "local")
    names = [info.config.name for info in await js.streams_info()]
    assert streams.job_stream(REF, "local") not in names
    assert "OBJ_" + streams.outputs_bucket(REF, "local") not in names


async def test_replicas_follow_their_origins_and_the_routing_mirror_reads_as_a_bucket(
    js: JetStreamContext,
) -> None:
    await ensure_region_buckets(js, RegionBucketSettings(region="r1", peers=("r2",)))
    await ensure_region_buckets(
        js, RegionBucketSettings(region="r2", peers=("r1",), backed_up=("r1",), routing_origin="r1")
    )
    await (await js.key_value(streams.completions_bucket("r1"))).put("job-1", b"done")
    await (await js.key_value(streams.routing_bucket("r1"))).put("media.thumbs", b"weights")

    lookup = CompletionLookup("r2", refresh_seconds=0.0)
    routing_here = await js.key_value(streams.routing_bucket("r2"))
    deadline = asyncio.get_running_loop().time() + 10
    while asyncio.get_running_loop().time() < deadline:
        found = await lookup.find(js, "job-1")
        try:
            table = (await routing_here.get("media.thumbs")).value
        except KeyNotFoundError:
            table = None
        if found is not None and table is not None:
            break
        await asyncio.sleep(0.1)
    assert found == b"done", "r2 sees r1's completion record through its replica"
    assert table == b"weights", "r2's routing bucket is a mirror of r1's, read with the KV API"
    assert await lookup.find(js, "job-2") is None
    with pytest.raises(NoStreamResponseError):
        await routing_here.put("media.thumbs", b"forged")  # a mirror takes no writes


async def test_buckets_and_replicas_answer_direct_gets_and_an_older_bucket_is_updated_to(
    js: JetStreamContext,
) -> None:
    # A bucket made before direct gets were asked for (nats-py's default leaves them off).
    older = streams.completions_bucket("r1")
    await js.create_key_value(KeyValueConfig(bucket=older))
    await (await js.key_value(older)).put("job-1", b"done")
    assert not (await js.stream_info(streams.kv_stream(older))).config.allow_direct

    provisioned = await ensure_region_buckets(js, RegionBucketSettings(region="r1", peers=("r2",)))
    await ensure_region_buckets(js, RegionBucketSettings(region="r2", peers=("r1",), backed_up=("r1",)))

    assert provisioned.changes[older].kind is ChangeKind.UPDATE
    assert (await (await js.key_value(older)).get("job-1")).value == b"done"
    direct = {info.config.name: bool(info.config.allow_direct) for info in await js.streams_info()}
    kv_and_replicas = {
        name: allowed for name, allowed in direct.items() if name.startswith(("KV_", "REPLICA_"))
    }
    assert kv_and_replicas
    assert all(kv_and_replicas.values()), kv_and_replicas
    assert not (await ensure_region_buckets(js, RegionBucketSettings(region="r1", peers=("r2",)))).changed
