"""The bodies of the gateway's HTTP API, shared by the gateway (which writes them) and the client.

Errors are RFC 9457 problem details. Each failure has a stable `code`; the problem `type` is the URI
`PROBLEM_BASE + code`. The codes of job failures are the worker's `FailureReason` values one-to-one,
so a client branches on the same names whether a bad image was refused at the door or by a worker.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from pixelmesh.api.base import ApiModel
from pixelmesh.api.messages import FailureReason, JobId, PipelineRef, Sha256Hex
from pixelmesh.api.pipeline import OutputType

PROBLEM_BASE = "https://pixelmesh.io/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"


class ProblemCode(StrEnum):
    """Why a request failed, stable and machine-readable."""

    # A job's failure, one-to-one with the worker's FailureReason.
    TOO_LARGE = FailureReason.TOO_LARGE.value
    TOO_MANY_PIXELS = FailureReason.TOO_MANY_PIXELS.value
    TOO_MANY_FRAMES = FailureReason.TOO_MANY_FRAMES.value
    UNSUPPORTED_FORMAT = FailureReason.UNSUPPORTED_FORMAT.value
    CORRUPT = FailureReason.CORRUPT.value
    TIMEOUT = FailureReason.TIMEOUT.value
    SOURCE_MISSING = FailureReason.SOURCE_MISSING.value
    INVALID_JOB = FailureReason.INVALID_JOB.value
    UNKNOWN_VARIANT = FailureReason.UNKNOWN_VARIANT.value
    PROCESSING_FAILED = FailureReason.PROCESSING_FAILED.value
    MAX_DELIVERIES = FailureReason.MAX_DELIVERIES.value
    # The gateway's own refusals.
    PAYLOAD_TOO_LARGE = "payload_too_large"
    BAD_REQUEST = "bad_request"
    UNAUTHORIZED = "unauthorized"
    BAD_SIGNATURE = "bad_signature"
    SIGNATURE_EXPIRED = "signature_expired"
    UNKNOWN_PIPELINE = "unknown_pipeline"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    BACKLOG_FULL = "backlog_full"
    NO_REGION = "no_region"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"

    @property
    def type_uri(self) -> str:
        return PROBLEM_BASE + self.value

    @classmethod
    def from_type_uri(cls, uri: str) -> ProblemCode | None:
        """The code a problem `type` names, or None for a type this version does not know."""
        if not uri.startswith(PROBLEM_BASE):
            return None
        try:
            return cls(uri.removeprefix(PROBLEM_BASE))
        except ValueError:
            return None


class Problem(ApiModel):
    """An RFC 9457 problem detail (`application/problem+json`)."""

    type: str
    """A URI naming the kind of failure: `https://pixelmesh.io/problems/<code>`."""
    title: str
    """A short, fixed summary of the kind of failure."""
    status: int = Field(ge=400, le=599)
    detail: str = ""
    """What went wrong with this request, for a person."""
    instance: str | None = None
    """The request path."""
    code: ProblemCode
    """The stable code the `type` ends with."""
    job_id: str | None = None
    """The job, when the failure is a job's."""
    retry_after_seconds: int | None = None
    """When the request may be repeated (also the `Retry-After` header)."""


class JobState(StrEnum):
    """Where a job stands."""

    PENDING = "pending"
    """Accepted (durable) and not finished yet."""
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class OutputLink(ApiModel):
    """One output of a finished job and where to download it."""

    variant: str
    format: OutputType
    content_type: str
    width: int
    height: int
    size: int
    sha256: Sha256Hex
    href: str
    """Download path, relative to the gateway: `/v1/jobs/{jobId}/outputs/{variant}`."""


class JobFailure(ApiModel):
    """Why a job failed."""

    code: ProblemCode
    type: str
    message: str


class JobView(ApiModel):
    """A job as the gateway reports it: accepted, succeeded or failed."""

    job_id: JobId
    pipeline: PipelineRef
    state: JobState
    region: str = ""
    """The region that accepted the job."""
    source_key: Sha256Hex
    submitted_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int | None = None
    outputs: list[OutputLink] = Field(default_factory=list)
    error: JobFailure | None = None

    @property
    def done(self) -> bool:
        return self.state is not JobState.PENDING

    def output(self, variant: str) -> OutputLink:
        """The output of `variant`; KeyError if the job has none."""
        for link in self.outputs:
            if link.variant == variant:
                return link
        raise KeyError(variant)


class StoredSource(ApiModel):
    """A source kept in a region's object store, addressable by signed URLs."""

    source_key: Sha256Hex
    size: int
    region: str
