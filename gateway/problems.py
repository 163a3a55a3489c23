"""Problem details (RFC 9457): one exception to raise, and its problem+json response.

Handlers raise `ProblemError(code, detail)`; the error middleware turns it (and aiohttp's own HTTP
errors, and anything unexpected) into an `application/problem+json` response. A job failure
reported by a worker maps one-to-one onto the code of the same name, so the HTTP status a client
sees for a bomb is the same whether the gateway refused it from the header or a worker did.
"""

from __future__ import annotations

from aiohttp import web

from pixelmesh.api.http import PROBLEM_CONTENT_TYPE, PROBLEM_KINDS, Problem, ProblemCode
from pixelmesh.api.messages import FailureReason


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
        return PROBLEM_KINDS[self.code].status


def problem_body(
    code: ProblemCode,
    detail: str,
    *,
    instance: str | None,
    job_id: str | None = None,
    retry_after: int | None = None,
) -> Problem:
    kind = PROBLEM_KINDS[code]
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
