"""Problem details (RFC 9457): one table of codes, statuses and titles, and one exception to raise.

Handlers raise `ProblemError(code, detail)`; the error middleware turns it (and aiohttp's own HTTP
errors, and anything unexpected) into an `application/problem+json` response. A job failure
reported by a worker maps one-to-one onto the code of the same name, so the HTTP status a client
sees for a bomb is the same whether the gateway refused it from the header or a worker did.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from pixelmesh.api.http import PROBLEM_CONTENT_TYPE, Problem, ProblemCode
from pixelmesh.api.messages import FailureReason


@dataclass(frozen=True, slots=True)
class ProblemKind:
    status: int
    title: str


KINDS: dict[ProblemCode, ProblemKind] = {
    ProblemCode.TOO_LARGE: ProblemKind(413, "The source is larger than the pipeline accepts"),
    ProblemCode.TOO_MANY_PIXELS: ProblemKind(422, "The image has more pixels than the pipeline accepts"),
    ProblemCode.TOO_MANY_FRAMES: ProblemKind(422, "The image has more frames than the pipeline accepts"),
    ProblemCode.UNSUPPORTED_FORMAT: ProblemKind(415, "The source format is not accepted by the pipeline"),
    ProblemCode.CORRUPT: ProblemKind(422, "The source could not be decoded"),
    ProblemCode.TIMEOUT: ProblemKind(504, "The job passed its deadline before it ran"),
    ProblemCode.SOURCE_MISSING: ProblemKind(404, "The source is not in the region's store"),
    ProblemCode.INVALID_JOB: ProblemKind(400, "The job could not be understood"),
    ProblemCode.UNKNOWN_VARIANT: ProblemKind(404, "The pipeline has no such variant"),
    ProblemCode.PROCESSING_FAILED: ProblemKind(422, "The pipeline could not process the image"),
    ProblemCode.MAX_DELIVERIES: ProblemKind(503, "The job failed on every attempt"),
    ProblemCode.PAYLOAD_TOO_LARGE: ProblemKind(413, "The request body is too large"),
    ProblemCode.BAD_REQUEST: ProblemKind(400, "The request is malformed"),
    ProblemCode.UNAUTHORIZED: ProblemKind(401, "A valid API key is required"),
    ProblemCode.BAD_SIGNATURE: ProblemKind(403, "The URL signature is not valid"),
    ProblemCode.SIGNATURE_EXPIRED: ProblemKind(403, "The signed URL has expired"),
    ProblemCode.UNKNOWN_PIPELINE: ProblemKind(404, "No such pipeline"),
    ProblemCode.NOT_FOUND: ProblemKind(404, "Not found"),
    ProblemCode.METHOD_NOT_ALLOWED: ProblemKind(405, "Method not allowed"),
    ProblemCode.BACKLOG_FULL: ProblemKind(429, "The region's backlog is full; retry later"),
    ProblemCode.NO_REGION: ProblemKind(503, "No region can take the job"),
    ProblemCode.UNAVAILABLE: ProblemKind(503, "The job system is unavailable; retry later"),
    ProblemCode.INTERNAL: ProblemKind(500, "Internal error"),
}


def code_of(reason: FailureReason) -> ProblemCode:
    """The problem code of a worker's failure reason (same name)."""
    return ProblemCode(reason.value)


class ProblemError(Exception):
    """A request ends with this problem."""

    def __init__(
        self,
        code: ProblemCode,
        detail: str = "",
        *,
        job_id: str | None = None,
        retry_after: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code.value}: {detail}")
        self.code = code
        self.detail = detail
        self.job_id = job_id
        self.retry_after = retry_after
        self.headers = dict(headers or {})

    @property
    def status(self) -> int:
        return KINDS[self.code].status


def problem_body(
    code: ProblemCode,
    detail: str,
    *,
    instance: str | None,
    job_id: str | None = None,
    retry_after: int | None = None,
) -> Problem:
    kind = KINDS[code]
    return Problem(
        type=code.type_uri,
        title=kind.title,
        status=kind.status,
        detail=detail,
        instance=instance,
        code=code,
        job_id=job_id,
        retry_after_seconds=retry_after,
    )


def problem_response(error: ProblemError, *, instance: str | None) -> web.Response:
    body = problem_body(
        error.code, error.detail, instance=instance, job_id=error.job_id, retry_after=error.retry_after
    )
    headers = dict(error.headers)
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    return web.Response(
        status=body.status,
        body=body.model_dump_json(by_alias=True, exclude_none=True).encode(),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )


def code_for_http_status(status: int) -> ProblemCode:
    """The code for an error aiohttp raised itself (routing, method, body size)."""
    return {
        400: ProblemCode.BAD_REQUEST,
        401: ProblemCode.UNAUTHORIZED,
        404: ProblemCode.NOT_FOUND,
        405: ProblemCode.METHOD_NOT_ALLOWED,
        413: ProblemCode.PAYLOAD_TOO_LARGE,
    }.get(status, ProblemCode.BAD_REQUEST if status < 500 else ProblemCode.INTERNAL)
