"""Reading an upload without ever holding more than the limit.

A declared `Content-Length` over the limit is refused before a byte of the body is read (and, for
a client that sent `Expect: 100-continue`, before it sends any). A chunked body has no declared
length: it is read in chunks and refused the moment it passes the limit. Either way the gateway
holds at most `limit` bytes (plus one chunk) for a request, whatever the client sends.

The image is the raw body, or the first file part of a `multipart/form-data` body (the shape an
HTML form or `curl -F` sends).
"""

from __future__ import annotations

from aiohttp import BodyPartReader, web

from pixelmesh.api.http import ProblemCode
from pixelmesh.gateway.problems import ProblemError

CHUNK = 64 * 1024
MULTIPART_OVERHEAD = 16 * 1024
"""Room for multipart boundaries and part headers on top of the image itself."""


def too_large(limit: int, seen: int | None = None) -> ProblemError:
    detail = f"the limit for this pipeline is {limit} bytes"
    if seen is not None:
        detail = f"the body is {seen} bytes; {detail}"
    return ProblemError(ProblemCode.PAYLOAD_TOO_LARGE, detail)


def declared_limit(content_type: str, limit: int) -> int:
    """The largest acceptable `Content-Length` for a body of `content_type` carrying `limit` bytes."""
    return limit + MULTIPART_OVERHEAD if content_type.startswith("multipart/") else limit


def check_declared_length(request: web.BaseRequest, limit: int) -> None:
    """Refuse a body whose declared length is over the limit, without reading it."""
    length = request.content_length
    if length is not None and length > declared_limit(request.content_type, limit):
        raise too_large(limit, length)


async def read_source(request: web.Request, limit: int) -> bytes:
    """The uploaded image, at most `limit` bytes; ProblemError when it is larger, empty or malformed."""
    check_declared_length(request, limit)
    if request.content_type.startswith("multipart/"):
        data = await _read_multipart(request, limit)
    else:
        data = await _read_stream(request, limit)
    if not data:
        raise ProblemError(ProblemCode.BAD_REQUEST, "the request carries no image")
    return data


async def _read_stream(request: web.Request, limit: int) -> bytes:
    body = bytearray()
    async for chunk in request.content.iter_chunked(CHUNK):
        if len(body) + len(chunk) > limit:
            raise too_large(limit)
        body += chunk
    return bytes(body)


async def _read_multipart(request: web.Request, limit: int) -> bytes:
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if isinstance(part, BodyPartReader) and (
                part.filename is not None or part.name in {"file", "image"}
            ):
                return await _read_part(part, limit)
            if isinstance(part, BodyPartReader):
                await part.release()
    except (ValueError, AssertionError) as error:
        raise ProblemError(ProblemCode.BAD_REQUEST, f"the multipart body is malformed: {error}") from error
    raise ProblemError(ProblemCode.BAD_REQUEST, "the multipart body has no file part")


async def _read_part(part: BodyPartReader, limit: int) -> bytes:
    body = bytearray()
    while chunk := await part.read_chunk(CHUNK):
        if len(body) + len(chunk) > limit:
            raise too_large(limit)
        body += chunk
    return bytes(body)
