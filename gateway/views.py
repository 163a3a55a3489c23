"""Turning the records in NATS into the job views the API returns (pure functions).

A job's state is read from three records, most final first: the completion record (a
`JobResult`, succeeded or failed), the dead-letter record (failed after its last attempt, or
refused as bad input), and the accepted record (the `JobMessage` the gateway published: pending).
None of them means the gateway never accepted the job, or its records have expired: 404.
"""

from __future__ import annotations

import base64
from urllib.parse import quote

from pixelmesh.api.http import JobFailure, JobState, JobView, OutputLink
from pixelmesh.api.messages import DeadLetter, JobError, JobMessage, JobResult, JobStatus, OutputRef
from pixelmesh.gateway.problems import code_of


def output_href(job_id: str, variant: str) -> str:
    return f"/v1/jobs/{quote(job_id, safe='')}/outputs/{quote(variant, safe='')}"


def output_link(job_id: str, output: OutputRef) -> OutputLink:
    return OutputLink(
        variant=output.variant,
        format=output.format,
        content_type=output.content_type,
        width=output.width,
        height=output.height,
        size=output.size,
        sha256=output.sha256,
        href=output_href(job_id, output.variant),
    )


def failure_of(error: JobError) -> JobFailure:
    code = code_of(error.reason)
    return JobFailure(code=code, type=code.type_uri, message=error.message)


def view_of_result(result: JobResult, region: str) -> JobView:
    succeeded = result.status is JobStatus.SUCCEEDED
    return JobView(
        job_id=result.job_id,
        pipeline=result.pipeline,
        state=JobState.SUCCEEDED if succeeded else JobState.FAILED,
        region=result.region or region,
        source_key=result.source_key,
        submitted_at=result.submitted_at,
        finished_at=result.finished_at,
        attempts=result.attempts,
        outputs=[output_link(result.job_id, output) for output in result.outputs] if succeeded else [],
        error=failure_of(result.error) if result.error is not None and not succeeded else None,
    )


def view_of_dead_letter(letter: DeadLetter, region: str) -> JobView | None:
    """The failed job's view; None for a dead letter of a message that was not a job at all."""
    job = letter.job
    if job is None:
        return None
    return JobView(
        job_id=job.job_id,
        pipeline=job.pipeline,
        state=JobState.FAILED,
        region=job.region or region,
        source_key=job.source_key,
        submitted_at=job.submitted_at,
        finished_at=letter.recorded_at,
        attempts=letter.attempts,
        error=failure_of(letter.error),
    )


def view_of_accepted(job: JobMessage, region: str) -> JobView:
    return JobView(
        job_id=job.job_id,
        pipeline=job.pipeline,
        state=JobState.PENDING,
        region=job.region or region,
        source_key=job.source_key,
        submitted_at=job.submitted_at,
    )


def sha256_hex_of_digest(digest: str | None) -> str | None:
    """An object store digest (`SHA-256=<base64url>`) as lowercase hex, or None."""
    if not digest:
        return None
    _, _, encoded = digest.partition("=")
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except ValueError:
        return None
    return raw.hex() if len(raw) == 32 else None
