"""The bodies of the gateway's HTTP API, shared by the gateway (which writes them) and the client.

Errors are RFC 9457 problem details. Each failure has a stable `code`; the problem `type` is the URI
`PROBLEM_BASE + code`, and its HTTP status and title are fixed by the code (`PROBLEM_KINDS`), so the
client rebuilds the same problem the gateway would send from a failed job's view. The codes of job
failures are the worker's `FailureReason` values one-to-one, so a client branches on the same names
whether a bad image was refused at the door or by a worker.
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class ProblemKind:
    """The HTTP status and fixed title every problem of one code carries."""

    status: int
    title: str


PROBLEM_KINDS: dict[ProblemCode, ProblemKind] = {
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
