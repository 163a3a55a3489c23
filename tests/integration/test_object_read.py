"""`read_object` and `put_object` against a real nats-server: the bucket's stream and a mirror of it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import StreamConfig, StreamSource
from nats.js.errors import NotFoundError, ServiceUnavailableError

from pixelmesh.objectstore import (
    SOURCE_CHUNK_BYTES,
    ObjectCorruptError,
    ObjectNotFoundError,
    chunk_subject,
    put_object,
    read_object,
    read_object_info,
)

BUCKET = "photos"
STREAM = f"OBJ_{BUCKET}"
NATS_PY_CHUNK = 128 * 1024

SIZES = {
    "empty": 0,
    "one byte": 1,
    "exactly one chunk": NATS_PY_CHUNK,
    "one chunk and a byte": NATS_PY_CHUNK + 1,
    "a 12 MP photo": 3_500_000,
}


async def _consumers(js: JetStreamContext, stream: str) -> int:
    return (await js.stream_info(stream)).state.consumer_count


async def _without_direct_gets(js: JetStreamContext, stream: str) -> None:
    """Turn off `allow_direct`: the stream then answers no direct gets (readers fall back)."""
    config = (await js.stream_info(stream)).config
    config.allow_direct = False
    await js.update_stream(config)


@contextlib.asynccontextmanager
async def _consumers_created(nc: NatsClient, stream: str) -> AsyncIterator[list[str]]:
    """The names of the consumers created on `stream` while the block runs (from the server's advisories)."""
    created: list[str] = []

    async def record(msg: Msg) -> None:
        created.append(json.loads(msg.data)["consumer"])

    subscription = await nc.subscribe(f"$JS.EVENT.ADVISORY.CONSUMER.CREATED.{stream}.*", cb=record)
    await nc.flush()
    try:
        yield created
        await nc.flush()
        await asyncio.sleep(0.05)
    finally:
        await subscription.unsubscribe()


@pytest.mark.parametrize("direct", [True, False], ids=["direct get", "pull consumer"])
@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
async def test_an_object_written_by_nats_py_reads_back_whole_and_leaves_no_consumer(
    nats_client: NatsClient, js: JetStreamContext, size: int, direct: bool
):
    store = await js.create_object_store(BUCKET)
    if not direct:
        await _without_direct_gets(js, STREAM)
    data = os.urandom(size)
    await store.put("source", data)

    async with _consumers_created(nats_client, STREAM) as created:
        read = await read_object(js, stream=STREAM, bucket=BUCKET, name="source", timeout=10)

    assert read == data
    # A stream that answers direct gets is read without a consumer; otherwise one per read.
    assert len(created) == (0 if direct or size == 0 else 1)
    assert await _consumers(js, STREAM) == 0


@pytest.mark.parametrize("size", [0, 1, SOURCE_CHUNK_BYTES, 3 * SOURCE_CHUNK_BYTES + 7])
async def test_an_object_written_by_put_object_reads_back_through_nats_py_and_read_object(
    js: JetStreamContext, size: int
):
    store = await js.create_object_store(BUCKET)
    data = os.urandom(size)

    info = await put_object(js, bucket=BUCKET, name="source", data=data)

    assert info.chunks == -(-size // SOURCE_CHUNK_BYTES)
    assert (await store.get("source")).data == data
    assert await read_object(js, stream=STREAM, bucket=BUCKET, name="source", timeout=10) == data


async def test_replacing_an_object_purges_the_chunks_of_the_old_version(js: JetStreamContext):
    await js.create_object_store(BUCKET)
    old = await put_object(js, bucket=BUCKET, name="source", data=b"a" * 300_000, chunk_bytes=100_000)
    await put_object(js, bucket=BUCKET, name="source", data=b"b" * 200_000, chunk_bytes=100_000)

    state = (await js.stream_info(STREAM, subjects_filter=chunk_subject(BUCKET, old.nuid))).state
    assert state.subjects is None or chunk_subject(BUCKET, old.nuid) not in state.subjects
    assert await read_object(js, stream=STREAM, bucket=BUCKET, name="source", timeout=10) == b"b" * 200_000


async def test_a_replacement_whose_old_chunks_cannot_be_purged_is_stored_and_logged(
    js: JetStreamContext, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    await js.create_object_store(BUCKET)
    old = await put_object(js, bucket=BUCKET, name="output", data=b"a" * 300_000, chunk_bytes=100_000)

    async def meta_leader_lost(*args: object, **kwargs: object) -> bool:
        # What the JetStream API answers in a region cut off from the meta leader, where
        # publishes and direct gets still work.
        raise ServiceUnavailableError(
            code=503, err_code=10008, description="JetStream system temporarily unavailable"
        )

    monkeypatch.setattr(js, "purge_stream", meta_leader_lost)
    await put_object(js, bucket=BUCKET, name="output", data=b"b" * 200_000, chunk_bytes=100_000)

    assert await read_object(js, stream=STREAM, bucket=BUCKET, name="output", timeout=10) == b"b" * 200_000
    state = (await js.stream_info(STREAM, subjects_filter=chunk_subject(BUCKET, old.nuid))).state
    assert state.subjects == {chunk_subject(BUCKET, old.nuid): 3}, "the old chunks stay until max age"
    assert "were not purged" in caplog.text


async def test_a_missing_object_is_reported_as_not_found(js: JetStreamContext):
    await js.create_object_store(BUCKET)

    with pytest.raises(ObjectNotFoundError, match="nowhere"):
        await read_object(js, stream=STREAM, bucket=BUCKET, name="nowhere", timeout=5)


async def test_a_deleted_object_is_reported_as_not_found(js: JetStreamContext):
    store = await js.create_object_store(BUCKET)
    await store.put("gone", os.urandom(200_000))
    await store.delete("gone")

    with pytest.raises(ObjectNotFoundError, match="deleted"):
        await read_object(js, stream=STREAM, bucket=BUCKET, name="gone", timeout=5)
    assert await _consumers(js, STREAM) == 0


async def test_a_missing_stream_is_not_mistaken_for_a_missing_object(js: JetStreamContext):
    with pytest.raises(NotFoundError, match="stream not found") as raised:
        await read_object(js, stream="OBJ_nobody", bucket="nobody", name="source", timeout=5)

    assert not isinstance(raised.value, ObjectNotFoundError)


@pytest.mark.parametrize("direct", [True, False], ids=["direct get", "pull consumer"])
async def test_chunks_that_do_not_match_the_digest_are_refused(js: JetStreamContext, direct: bool):
    store = await js.create_object_store(BUCKET)
    if not direct:
        await _without_direct_gets(js, STREAM)
    await store.put("photo", b"x" * 300_000)
    info = await store.get_info("photo")
    # Swap the first chunk (stream sequence 1: chunks precede the metadata) for other bytes.
    await js.delete_msg(STREAM, 1)
    await js.publish(chunk_subject(BUCKET, info.nuid), b"y" * NATS_PY_CHUNK)

    with pytest.raises(ObjectCorruptError, match="digest"):
        await read_object(js, stream=STREAM, bucket=BUCKET, name="photo", timeout=5)
    assert await _consumers(js, STREAM) == 0


@pytest.mark.parametrize("direct", [True, False], ids=["direct get", "pull consumer"])
async def test_an_object_missing_chunks_is_refused_at_once_instead_of_waiting_for_them(
    js: JetStreamContext, direct: bool
):
    store = await js.create_object_store(BUCKET)
    if not direct:
        await _without_direct_gets(js, STREAM)
    await store.put("photo", os.urandom(300_000))
    await js.delete_msg(STREAM, 2)

    with pytest.raises(ObjectCorruptError, match="2 of its 3 chunks"):
        await read_object(js, stream=STREAM, bucket=BUCKET, name="photo", timeout=30)
    assert await _consumers(js, STREAM) == 0


@pytest.mark.parametrize("direct", [True, False], ids=["mirror with direct gets", "mirror without"])
async def test_a_mirror_of_the_object_store_reads_like_its_origin(js: JetStreamContext, direct: bool):
    """A backup region reads sources from its mirror of the origin's object stream (another name)."""
    store = await js.create_object_store(BUCKET)
    objects = {"small": os.urandom(1000), "large": os.urandom(3 * NATS_PY_CHUNK + 5), "empty": b""}
    for name, data in objects.items():
        await store.put(name, data)
    await store.put("gone", b"soon deleted")
    await store.delete("gone")
    mirror = "REPLICA_backup_OBJ_photos"
    await js.add_stream(StreamConfig(name=mirror, mirror=StreamSource(name=STREAM), allow_direct=direct))
    origin_messages = (await js.stream_info(STREAM)).state.messages
    for _ in range(100):
        if (await js.stream_info(mirror)).state.messages >= origin_messages:
            break
        await asyncio.sleep(0.05)

    for name, data in objects.items():
        assert await read_object(js, stream=mirror, bucket=BUCKET, name=name, timeout=10) == data
    with pytest.raises(ObjectNotFoundError):
        await read_object(js, stream=mirror, bucket=BUCKET, name="gone", timeout=5)
    with pytest.raises(ObjectNotFoundError):
        await read_object(js, stream=mirror, bucket=BUCKET, name="never-stored", timeout=5)
    assert await _consumers(js, mirror) == 0
    assert (await read_object_info(js, stream=mirror, bucket=BUCKET, name="large")).chunks == 4


async def test_a_read_that_outlasts_its_timeout_raises_timeout_error(js: JetStreamContext):
    store = await js.create_object_store(BUCKET)
    await store.put("photo", os.urandom(3_500_000))

    with pytest.raises(TimeoutError):
        await read_object(js, stream=STREAM, bucket=BUCKET, name="photo", timeout=0.0001)
