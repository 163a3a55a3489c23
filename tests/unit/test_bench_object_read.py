"""The source-read prototype returns exactly what `ObjectStore.get` returns, against a real nats-server."""

from __future__ import annotations

import os

import pytest
from nats.js import JetStreamContext

from bench.prototypes import read_object_by_pull


async def test_pull_read_returns_the_same_bytes_as_get_and_leaves_no_consumer(js: JetStreamContext):
    store = await js.create_object_store("bench-proto")
    data = os.urandom(3 * 128 * 1024 + 1234)  # four chunks
    await store.put("photo", data)
    read = await read_object_by_pull(js, "bench-proto", "photo")
    info = await js.stream_info("OBJ_bench-proto")
    assert info.state.consumer_count == 0
    assert read == data
    assert read == (await store.get("photo")).data


async def test_pull_read_of_an_empty_object_is_empty(js: JetStreamContext):
    store = await js.create_object_store("bench-empty")
    await store.put("nothing", b"")
    assert await read_object_by_pull(js, "bench-empty", "nothing") == b""


async def test_pull_read_refuses_an_object_whose_chunks_do_not_match_its_digest(js: JetStreamContext):
    store = await js.create_object_store("bench-tamper")
    await store.put("photo", b"x" * 300_000)
    info = await store.get_info("photo")
    # Replace the first chunk (stream sequence 1: chunks are stored before the metadata) with other bytes.
    await js.delete_msg("OBJ_bench-tamper", 1)
    await js.publish(f"$O.bench-tamper.C.{info.nuid}", b"y" * 128 * 1024)
    with pytest.raises(RuntimeError, match="digest"):
        await read_object_by_pull(js, "bench-tamper", "photo")
