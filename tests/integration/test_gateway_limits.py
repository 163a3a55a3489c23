"""What the gateway refuses, and how early: size, pixels, formats, keys, backlog."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp
import pytest

from pixelmesh.gateway.app import serve
from pixelmesh.gateway.config import GatewayConfig
from tests import imagegen
from tests.fixtures.gateway import MAX_BYTES, GatewayUnderTest

PROBLEM = "application/problem+json"


def jobs_path(gateway: GatewayUnderTest) -> str:
    return f"/v1/pipelines/{gateway.pipeline.namespace}/{gateway.pipeline.name}/jobs"


@contextlib.asynccontextmanager
async def raw_connection(url: str) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def read_status_and_body(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return status, await asyncio.wait_for(reader.readexactly(length), 5)


def request_head(gateway: GatewayUnderTest, extra: str) -> bytes:
    return (
        f"POST {jobs_path(gateway)} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {gateway.api_key}\r\n"
        f"Content-Type: image/jpeg\r\n{extra}\r\n"
    ).encode()


async def test_a_declared_oversized_body_is_refused_413_before_any_of_it_is_sent(gateway: GatewayUnderTest):
    async with raw_connection(gateway.url) as (reader, writer):
        # Only the head goes out: the answer must come without the gateway waiting for 10 GB.
        writer.write(request_head(gateway, f"Content-Length: {10 * 1024**3}\r\n"))
        await writer.drain()
        status, body = await read_status_and_body(reader)
    assert status == 413
    assert b"payload_too_large" in body


async def test_expect_100_continue_with_an_oversized_length_gets_413_instead_of_continue(
    gateway: GatewayUnderTest,
):
    async with raw_connection(gateway.url) as (reader, writer):
        writer.write(request_head(gateway, f"Content-Length: {MAX_BYTES + 1}\r\nExpect: 100-continue\r\n"))
        await writer.drain()
        status, body = await read_status_and_body(reader)
    assert status == 413
    assert b"payload_too_large" in body


async def test_a_chunked_oversized_body_is_refused_while_streaming_long_before_its_end(
    gateway: GatewayUnderTest,
):
    chunk = b"\xff" * 65536
    would_send = 256 * 1024 * 1024
    sent = 0
    async with raw_connection(gateway.url) as (reader, writer):
        writer.write(request_head(gateway, "Transfer-Encoding: chunked\r\n"))
        response = asyncio.ensure_future(read_status_and_body(reader))
        with contextlib.suppress(ConnectionError):
            while sent < would_send and not response.done():
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
                sent += len(chunk)
        status, body = await response
    assert status == 413
    assert b"payload_too_large" in body
    # The answer came while the client was still sending: the gateway never waited for the whole
    # body (loopback socket buffers account for what was sent past the limit).
    assert sent < would_send / 4


async def test_a_decompression_bomb_is_refused_from_its_header_with_too_many_pixels(
    gateway: GatewayUnderTest,
):
    bomb = imagegen.png_bomb(4000, 4000)
    assert len(bomb) < MAX_BYTES
    async with aiohttp.ClientSession(gateway.url, headers=gateway.auth) as http:
        response = await http.post(jobs_path(gateway), data=bomb)
        problem = await response.json(content_type=PROBLEM)
    assert response.status == 422
    assert problem["type"] == "https://pixelmesh.io/problems/too_many_pixels"
    assert problem["code"] == "too_many_pixels"
    assert "16000000" in problem["detail"]


@pytest.mark.parametrize(
    ("name", "data", "status", "code"),
    [
        ("svg", imagegen.svg_image(), 415, "unsupported_format"),
        ("text", imagegen.text_named_jpg(), 415, "unsupported_format"),
        ("empty", imagegen.zero_bytes(), 400, "bad_request"),
    ],
)
async def test_sources_the_pipeline_cannot_read_get_their_problem_type(
    gateway: GatewayUnderTest, name: str, data: bytes, status: int, code: str
):
    async with aiohttp.ClientSession(gateway.url, headers=gateway.auth) as http:
        response = await http.post(jobs_path(gateway), data=data)
        problem = await response.json(content_type=PROBLEM)
    assert (response.status, problem["code"]) == (status, code), (name, problem)


async def test_job_endpoints_need_an_api_key_in_either_header(gateway: GatewayUnderTest):
    source = imagegen.photo_jpeg(32, 32)
    async with aiohttp.ClientSession(gateway.url) as http:
        missing = await http.post(jobs_path(gateway), data=source)
        assert missing.status == 401
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await missing.json(content_type=PROBLEM))["code"] == "unauthorized"
        wrong = await http.get("/v1/jobs/abc", headers={"Authorization": "Bearer nope"})
        assert wrong.status == 401
        by_header = await http.post(jobs_path(gateway), data=source, headers={"X-API-Key": gateway.api_key})
        assert by_header.status == 202


async def test_unknown_pipelines_and_variants_are_404_with_their_own_types(gateway: GatewayUnderTest):
    source = imagegen.photo_jpeg(32, 32)
    async with aiohttp.ClientSession(gateway.url, headers=gateway.auth) as http:
        pipeline = await http.post("/v1/pipelines/tests/nope/jobs", data=source)
        assert pipeline.status == 404
        assert (await pipeline.json(content_type=PROBLEM))["code"] == "unknown_pipeline"
        variant = await http.post(jobs_path(gateway) + "?variant=huge", data=source)
        assert variant.status == 404
        assert (await variant.json(content_type=PROBLEM))["code"] == "unknown_variant"


async def test_a_full_backlog_answers_429_with_retry_after_from_the_cached_figure(
    gateway: GatewayUnderTest, tmp_path
):
    config = GatewayConfig(
        port=0,
        regions={"local": (gateway.nats_url,)},
        pipelines=(tmp_path / "pipelines",),
        api_keys=(gateway.api_key,),
        backlog_limit=2,
        backlog_refresh_seconds=0.1,
        retry_after_seconds=7,
    )
    source = imagegen.photo_jpeg(32, 32)
    async with serve(config) as small, aiohttp.ClientSession(small.url, headers=gateway.auth) as http:
        statuses = []
        for _ in range(40):
            response = await http.post(jobs_path(gateway), data=source)
            statuses.append(response.status)
            if response.status == 429:
                problem = await response.json(content_type=PROBLEM)
                assert problem["code"] == "backlog_full"
                assert response.headers["Retry-After"] == "7"
                break
            await asyncio.sleep(0.05)
    # No worker runs: the backlog only grows. The refusal follows once the cache has seen it.
    assert statuses[-1] == 429
    assert statuses.count(202) >= 2


async def test_a_multipart_form_upload_is_accepted_like_a_raw_body(gateway: GatewayUnderTest):
    form = aiohttp.FormData()
    form.add_field("note", "ignored")
    form.add_field("file", imagegen.photo_jpeg(40, 30), filename="photo.jpg", content_type="image/jpeg")
    async with aiohttp.ClientSession(gateway.url, headers=gateway.auth) as http:
        response = await http.post(jobs_path(gateway), data=form)
        body = await response.json()
    assert response.status == 202, body
    assert body["state"] == "pending"


async def test_a_multipart_file_part_over_the_limit_is_refused_while_streaming(gateway: GatewayUnderTest):
    form = aiohttp.FormData()
    form.add_field("file", b"\xff\xd8" + b"\x00" * (MAX_BYTES + 10), filename="huge.jpg")
    async with aiohttp.ClientSession(gateway.url, headers=gateway.auth) as http:
        response = await http.post(jobs_path(gateway), data=form)
        problem = await response.json(content_type=PROBLEM)
    assert response.status == 413
    assert problem["code"] == "payload_too_large"
