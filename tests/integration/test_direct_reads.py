"""Reads that a region answers without JetStream's API (and so without a meta leader), against a
real nats-server: the last message of a subject, and a job's completion record in the region's
bucket or its replica of another region's."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StreamConfig, StreamSource
from nats.js.errors import NotFoundError, ServiceUnavailableError

from pixelmesh.api import streams
from pixelmesh.directget import last_message
from pixelmesh.records import CompletionLookup

REGION, PEER = "r1", "r2"


@contextlib.asynccontextmanager
async def api_requests(nc: NatsClient) -> AsyncIterator[list[str]]:
    """The subjects of the JetStream API requests made while the block runs."""
    seen: list[str] = []

    async def record(msg: Msg) -> None:
        seen.append(msg.subject)

    subscription = await nc.subscribe("$JS.API.>", cb=record)
    await nc.flush()
    try:
        yield seen
        await nc.flush()
    finally:
        await subscription.unsubscribe()


async def test_the_last_message_is_read_with_a_direct_get_where_the_stream_allows_it(
    nats_client: NatsClient, js: JetStreamContext
) -> None:
    await js.add_stream(StreamConfig(name="NOTES", subjects=["notes.>"], allow_direct=True))
    await js.publish("notes.a", b"first")
    await js.publish("notes.a", b"second")

    async with api_requests(nats_client) as requests:
        message = await last_message(js, "NOTES", "notes.a")

    assert message.data == b"second"
    assert requests == ["$JS.API.DIRECT.GET.NOTES.notes.a"]


async def test_a_stream_without_direct_gets_is_read_through_the_api(js: JetStreamContext) -> None:
    # (Nobody may listen on the API's subjects here: a listener would be a responder to the direct
    # get, which would then wait for an answer instead of failing at once.)
    await js.add_stream(StreamConfig(name="NOTES", subjects=["notes.>"], allow_direct=False))
    await js.publish("notes.a", b"first")
    await js.publish("notes.a", b"second")

    assert (await last_message(js, "NOTES", "notes.a")).data == b"second"


@pytest.mark.parametrize("direct", [True, False], ids=["allow_direct", "no direct gets"])
async def test_a_subject_without_messages_is_not_found_either_way(js: JetStreamContext, direct: bool) -> None:
    await js.add_stream(StreamConfig(name="NOTES", subjects=["notes.>"], allow_direct=direct))
    await js.publish("notes.a", b"first")

    with pytest.raises(NotFoundError):
        await last_message(js, "NOTES", "notes.b")


async def records(js: JetStreamContext) -> tuple[str, str]:
    """The region's completions bucket and its replica of the peer's (as the operator makes them)."""
    own, peer = streams.completions_bucket(REGION), streams.completions_bucket(PEER)
    await js.create_key_value(KeyValueConfig(bucket=own, direct=True))
    await js.create_key_value(KeyValueConfig(bucket=peer, direct=True))
    replica = streams.replica_stream(streams.kv_stream(peer), REGION)
    await js.add_stream(
        StreamConfig(name=replica, mirror=StreamSource(name=streams.kv_stream(peer)), allow_direct=True)
    )
    return own, peer


async def test_a_record_is_found_in_the_own_bucket_or_in_a_replica_without_the_api(
    nats_client: NatsClient, js: JetStreamContext
) -> None:
    own, peer = await records(js)
    await (await js.key_value(own)).put("job-here", b'{"here": true}')
    await (await js.key_value(peer)).put("job-there", b'{"there": true}')
    lookup = CompletionLookup(REGION)
    await lookup.replicas(js)  # the list needs the API; it is refreshed only now and then
    for _ in range(100):  # the mirror copies within moments
        if await lookup.find(js, "job-there") is not None:
            break
        await asyncio.sleep(0.05)

    async with api_requests(nats_client) as requests:
        here = await lookup.find(js, "job-here")
        there = await lookup.find(js, "job-there")
        nowhere = await lookup.find(js, "job-nowhere")

    assert (here, there, nowhere) == (b'{"here": true}', b'{"there": true}', None)
    assert requests
    assert all(subject.startswith("$JS.API.DIRECT.GET.") for subject in requests), requests


async def test_a_stream_list_that_fails_keeps_the_replicas_found_before(
    js: JetStreamContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, peer = await records(js)
    await (await js.key_value(peer)).put("job-there", b"{}")
    now = [0.0]
    lookup = CompletionLookup(REGION, refresh_seconds=30.0, retry_seconds=5.0, clock=lambda: now[0])
    known = await lookup.replicas(js)
    assert [origin for _, origin in known] == [peer]
    listings = []

    async def no_meta_leader() -> None:
        listings.append(now[0])
        raise ServiceUnavailableError(code=503, description="JetStream system temporarily unavailable")

    monkeypatch.setattr(js, "streams_info", no_meta_leader)
    now[0] = 31.0
    assert await lookup.replicas(js) == known
    now[0] = 33.0
    assert await lookup.replicas(js) == known
    now[0] = 36.5
    assert await lookup.replicas(js) == known
    assert listings == [31.0, 36.5], "a failed list is tried again after retry_seconds, not at every lookup"
