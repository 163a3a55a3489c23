"""Reading and writing JetStream object-store objects without nats-py's flow-control stall.

Problem: nats-py's `ObjectStore.get` reads an object's chunks through an ordered push consumer with
flow control and answers the server's flow-control requests from a task that wakes every 0.25 s
(nats-io/nats.py#703): every ~2 MB of object waits up to 250 ms, and the result grows by
`bytes +=`, copying quadratically. A 3.5 MB photo took 270 ms to read. `ObjectStore.get` also
only reads from the bucket's own stream (`OBJ_<bucket>`), never from a mirror of it.

Approach: `read_object` takes the object's metadata with one lookup of the last message on its
meta subject, then all its chunks with one batched direct get (`$JS.API.DIRECT.GET`, `batch` and
`next_by_subj`: one request, raw chunks back, no consumer) and joins them once, checked against
the SHA-256 digest of the metadata. A stream that does not answer direct gets (created without
`allow_direct`, as a mirror may be) is read with one ephemeral pull consumer filtered to the
object's chunk subject (no acks, in memory) and one fetch, and the consumer is deleted afterwards
rather than left to expire. Lookups, direct gets and consumers all work on any stream that holds
the bucket's subjects, so a mirror of the object store in another region (which keeps the origin's
subjects) reads exactly like the origin. For a 3.5 MB photo in 512 KiB chunks on loopback: ~8 ms;
a 160 KB web image: ~1 ms (nats-py's `get`: 270 ms and ~3 ms). `put_object` writes the same
layout as nats-py's `ObjectStore.put`, in `SOURCE_CHUNK_BYTES` chunks, with the chunk publishes
in flight together instead of one round trip each.

Caveat: links to other objects are not followed (PixelMesh never writes them). A mirror lags its
origin; an object whose metadata has reached the mirror has its chunks there too, because chunks
are written before the metadata and a mirror keeps the order. Direct gets of a replicated stream
may be answered by a follower a moment behind its leader: chunks it lacks make the read fail as
`ObjectCorruptError` at once (callers retry), never wait or return partial data.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
from datetime import UTC, datetime

from nats.errors import Error as NatsError
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

from pixelmesh.directget import last_message

logger = logging.getLogger(__name__)

SOURCE_CHUNK_BYTES = 512 * 1024
"""Chunk size for sources: a 12 MP photo is 7 chunks instead of 28 at nats-py's 128 KiB (read in
10-13 ms instead of 11-19, docs/benchmarks.md), and 512 KiB stays under every server's
`max_payload` (nats-server's default is 1 MiB, headers included)."""

DIGEST_PREFIX = "SHA-256="
NO_MESSAGE_FOUND = 10037
"""JetStream's error code for "no message found" (the stream exists, the subject has no message)."""
NO_RESPONDERS, NO_MESSAGES, END_OF_BATCH = "503", "404", "204"
"""Status headers of a direct get: nobody answers (no `allow_direct`), nothing found, batch done."""
DIRECT_PENDING_BYTES = 64 * 1024 * 1024
CONSUMER_INACTIVE_SECONDS = 30.0
"""A reader that dies before deleting its consumer leaves it to the server for this long."""


class ObjectNotFoundError(LookupError):
    """The object is not in the store: no metadata, or metadata that marks it deleted."""


class ObjectCorruptError(Exception):
    """The object's chunks do not add up to its metadata (count, size or digest)."""


def encoded_name(name: str) -> str:
    """The object name as it appears in its meta subject (URL-safe base64, as nats-py writes it)."""
    return base64.urlsafe_b64encode(name.encode()).decode()


def meta_subject(bucket: str, name: str) -> str:
    """The subject holding the metadata of object `name` in `bucket`."""
    return f"$O.{bucket}.M.{encoded_name(name)}"


def chunk_subject(bucket: str, nuid: str) -> str:
    """The subject holding the chunks of the object version identified by `nuid`."""
    return f"$O.{bucket}.C.{nuid}"


def object_digest(data: bytes) -> str:
    """The digest field of an object's metadata for `data`."""
    return DIGEST_PREFIX + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode()


async def read_object_info(js: JetStreamContext, *, stream: str, bucket: str, name: str) -> api.ObjectInfo:
    """The metadata of object `name`; `ObjectNotFoundError` if it is missing or deleted."""
    try:
        msg = await last_message(js, stream, meta_subject(bucket, name))
    except NotFoundError as exc:
        # A direct get's "not found" has no code; a missing stream answers no direct get, and the
        # API's get that follows says so with its own code.
        if exc.err_code not in (None, NO_MESSAGE_FOUND):
            raise  # the stream itself is missing: a provisioning problem, not a missing object
        raise ObjectNotFoundError(f"object {name} is not in bucket {bucket} (stream {stream})") from exc
    info: api.ObjectInfo = api.ObjectInfo.from_response(json.loads(msg.data or b"{}"))
    if info.deleted:
        raise ObjectNotFoundError(f"object {name} was deleted from bucket {bucket} (stream {stream})")
    if info.is_link():
        raise ObjectNotFoundError(f"object {name} of bucket {bucket} is a link; links are not followed")
    return info


async def read_object(
    js: JetStreamContext,
    *,
    stream: str,
    bucket: str,
    name: str,
    timeout: float,  # noqa: ASYNC109 - one budget for several requests; the callers hold a number
) -> bytes:
    """The bytes of object `name` of `bucket`, read from `stream` (the bucket's or a mirror of it).

    Raises `ObjectNotFoundError` when it is missing or deleted, `ObjectCorruptError` when its
    chunks do not match its metadata, and `TimeoutError` when the whole read takes over `timeout`.
    """
    async with asyncio.timeout(timeout):
        info = await read_object_info(js, stream=stream, bucket=bucket, name=name)
        size, chunks = info.size or 0, info.chunks or 0
        parts: list[bytes] | None = []
        if size:
            parts = await _direct_chunks(js, stream=stream, bucket=bucket, info=info, wait_seconds=timeout)
            if parts is None:
                parts = await _fetch_chunks(
                    js, stream=stream, bucket=bucket, info=info, fetch_seconds=timeout
                )
    assert parts is not None
    data = b"".join(parts) if len(parts) != 1 else parts[0]
    if len(data) != size or (size and object_digest(data) != _normalised_digest(info.digest)):
        raise ObjectCorruptError(
            f"object {name} of bucket {bucket} (stream {stream}) does not match its digest: "
            f"{len(data)} bytes in {len(parts)} chunks read, {size} bytes in {chunks} chunks recorded"
        )
    return data


async def _direct_chunks(
    js: JetStreamContext,
    *,
    stream: str,
    bucket: str,
    info: api.ObjectInfo,
    wait_seconds: float,
) -> list[bytes] | None:
    """Every chunk of the object, in order, with one batched direct get; None if `stream` does not
    answer direct gets (a stream without `allow_direct`, e.g. a mirror made without it)."""
    expected = info.chunks or 0
    nc = js._nc
    inbox = nc.new_inbox()
    # Room for the whole object in the subscription's buffer: a slow-consumer drop would lose chunks.
    subscription = await nc.subscribe(
        inbox,
        pending_bytes_limit=max(2 * (info.size or 0), DIRECT_PENDING_BYTES),
        pending_msgs_limit=expected + 8,
    )
    try:
        request = {"seq": 1, "next_by_subj": chunk_subject(bucket, info.nuid), "batch": expected}
        await nc.publish(f"{js._prefix}.DIRECT.GET.{stream}", json.dumps(request).encode(), reply=inbox)
        parts: list[bytes] = []
        while True:
            msg = await subscription.next_msg(timeout=wait_seconds)
            status = (msg.headers or {}).get("Status")
            if status is None:
                parts.append(msg.data)
            elif status == NO_RESPONDERS:
                return None
            elif status in (END_OF_BATCH, NO_MESSAGES):
                break
            else:
                description = (msg.headers or {}).get("Description", "")
                raise ObjectCorruptError(
                    f"the direct get of object {info.name} of bucket {bucket} (stream {stream}) "
                    f"failed with status {status} {description}".rstrip()
                )
        if len(parts) < expected:
            raise ObjectCorruptError(
                f"object {info.name} of bucket {bucket} (stream {stream}) has {len(parts)} "
                f"of its {expected} chunks"
            )
        return parts
    finally:
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()


async def _fetch_chunks(
    js: JetStreamContext,
    *,
    stream: str,
    bucket: str,
    info: api.ObjectInfo,
    fetch_seconds: float,
) -> list[bytes]:
    """Every chunk of the object, in order, through one ephemeral pull consumer."""
    expected = info.chunks or 0
    consumer = js._nc._nuid.next().decode()
    config = api.ConsumerConfig(
        name=consumer,
        filter_subject=chunk_subject(bucket, info.nuid),
        ack_policy=api.AckPolicy.NONE,
        deliver_policy=api.DeliverPolicy.ALL,
        inactive_threshold=CONSUMER_INACTIVE_SECONDS,
        mem_storage=True,
        num_replicas=1,
    )
    created = await js.add_consumer(stream, config)
    try:
        subscription = await js.pull_subscribe_bind(name=consumer, stream=stream)
    except BaseException:
        with contextlib.suppress(Exception):
            await asyncio.shield(js.delete_consumer(stream, consumer))
        raise
    try:
        pending = created.num_pending or 0
        if pending < expected:
            # Replaced or purged under the reader: waiting would only run into the timeout.
            raise ObjectCorruptError(
                f"object {info.name} of bucket {bucket} (stream {stream}) has {pending} "
                f"of its {expected} chunks"
            )
        parts: list[bytes] = []
        while len(parts) < expected:
            messages = await subscription.fetch(expected - len(parts), timeout=fetch_seconds)
            parts.extend(message.data for message in messages)
        return parts
    finally:
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()
        # Deleted at once so busy readers do not pile consumers up; the inactivity threshold
        # removes it if this fails (a disconnect, a cancelled read).
        with contextlib.suppress(Exception):
            await asyncio.shield(js.delete_consumer(stream, consumer))


def _normalised_digest(digest: str | None) -> str:
    """The metadata's digest in `object_digest`'s spelling (some clients write `sha-256=`)."""
    if not digest:
        return ""
    algorithm, _, value = digest.partition("=")
    return f"{algorithm.upper()}={value}"


async def put_object(
    js: JetStreamContext,
    *,
    bucket: str,
    name: str,
    data: bytes,
    chunk_bytes: int = SOURCE_CHUNK_BYTES,
    stream: str | None = None,
) -> api.ObjectInfo:
    """Store `data` as object `name` of `bucket` in `chunk_bytes` chunks; its new metadata.

    The layout is nats-py's and nats-server's (any client reads it): chunks on a fresh chunk
    subject, then the metadata with a subject rollup, then the chunks of the version it replaced
    are purged. Chunk publishes are in flight together. `stream` defaults to `OBJ_<bucket>`.

    Only the purge goes through the JetStream API, which is down while a region is cut off from
    the JetStream meta leader (the lookup is a direct get, the rest are publishes). The new
    version is complete by then, so a failed purge is logged and the replaced chunks are left to
    the bucket's max age rather than failing a write that happened.
    """
    if chunk_bytes <= 0:
        raise ValueError(f"chunk_bytes must be positive, got {chunk_bytes}")
    stream = stream or f"OBJ_{bucket}"
    try:
        replaced: api.ObjectInfo | None = await read_object_info(js, stream=stream, bucket=bucket, name=name)
    except ObjectNotFoundError:
        replaced = None
    nuid = js._nc._nuid.next().decode()
    chunks = chunk_subject(bucket, nuid)
    view = memoryview(data)
    try:
        acks = [
            await js.publish_async(chunks, bytes(view[offset : offset + chunk_bytes]))
            for offset in range(0, len(data), chunk_bytes)
        ]
        await asyncio.gather(*acks)
        info = api.ObjectInfo(
            name=name,
            bucket=bucket,
            nuid=nuid,
            size=len(data),
            chunks=len(acks),
            digest=object_digest(data),
            mtime=datetime.now(UTC).isoformat(),
            options=api.ObjectMetaOptions(max_chunk_size=chunk_bytes),
        )
        await js.publish(
            meta_subject(bucket, name),
            json.dumps(info.as_dict()).encode(),
            headers={api.Header.ROLLUP: "sub"},
        )
    except BaseException:
        with contextlib.suppress(Exception):
            await js.purge_stream(stream, subject=chunks)
        raise
    if replaced is not None and replaced.nuid != nuid:
        try:
            await js.purge_stream(stream, subject=chunk_subject(bucket, replaced.nuid))
        except NatsError as error:
            logger.warning(
                "Object %s of bucket %s was stored, but the chunks of the version it replaced were "
                "not purged (%r); they stay until the bucket's max age.",
                name,
                bucket,
                error,
            )
    return info
