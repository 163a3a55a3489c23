"""The messages that cross process boundaries: jobs, results, completion and dead-letter records.

Every message carries a schema version `v`. A reader refuses a version it does not know with a
clear error instead of guessing, so a rolling upgrade that introduces `v: 2` fails loudly on old
workers rather than producing wrong outputs. Timestamps are timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, NonNegativeInt

from pixelmesh.api.base import ApiModel
from pixelmesh.api.pipeline import OutputType, PipelineSpec

JOB_SCHEMA_VERSION: Literal[1] = 1
RESULT_SCHEMA_VERSION: Literal[1] = 1

JobId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_=-]{0,127}$")]
"""A job id: valid as a NATS message id, a KV key and a URL path segment."""
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


def utc_now() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)


class PipelineRef(ApiModel):
    """Names an ImagePipeline."""

    namespace: str = Field(min_length=1, max_length=63)
    name: str = Field(min_length=1, max_length=253)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class PipelineRevision(ApiModel):
    """One ImagePipeline at one generation: the pipeline file a worker runs (YAML or JSON).

    The operator renders it from the ImagePipeline (into a ConfigMap, or a file for the local
    stack); the worker reads it once at start-up.
    """

    namespace: str = Field(min_length=1, max_length=63)
    name: str = Field(min_length=1, max_length=253)
    generation: int = Field(ge=0)
    """The ImagePipeline's `metadata.generation`; part of every output key."""
    spec: PipelineSpec

    @property
    def ref(self) -> PipelineRef:
        return PipelineRef(namespace=self.namespace, name=self.name)


class FailureReason(StrEnum):
    """Why a job failed, stable and machine-readable (metrics labels, problem types)."""

    TOO_LARGE = "too_large"
    TOO_MANY_PIXELS = "too_many_pixels"
    TOO_MANY_FRAMES = "too_many_frames"
    UNSUPPORTED_FORMAT = "unsupported_format"
    CORRUPT = "corrupt"
    TIMEOUT = "timeout"
    SOURCE_MISSING = "source_missing"
    INVALID_JOB = "invalid_job"
    UNKNOWN_VARIANT = "unknown_variant"
    PROCESSING_FAILED = "processing_failed"
    MAX_DELIVERIES = "max_deliveries"


class JobMessage(ApiModel):
    """A request to run a pipeline on one stored source. Published with `Nats-Msg-Id = jobId`."""

    v: Literal[1] = JOB_SCHEMA_VERSION
    job_id: JobId
    pipeline: PipelineRef
    generation: int = Field(ge=0)
    """The pipeline generation the submitter saw (informational: workers run their own)."""
    source_key: Sha256Hex
    """The source's sha256, its key in the region's source object store."""
    source_size: int = Field(ge=0)
    submitted_at: datetime = Field(default_factory=utc_now)
    deadline: datetime | None = None
    """After this instant the job fails with `timeout` instead of running."""
    variants: list[str] | None = None
    """Only these variants (all of them when omitted)."""
    formats: dict[str, OutputType] = Field(default_factory=dict)
    """Concrete formats for `auto` variants, by variant name (default: jpeg)."""
    region: str = ""
    """The region the job was accepted in."""
    source_bucket: str = ""
    """The object store holding the source; empty: the sources bucket of `region`."""


class OutputRef(ApiModel):
    """One stored output."""

    variant: str
    key: str
    """Object store key: `<namespace>/<pipeline>/<generation>/<source sha256>/<variant>.<ext>`."""
    bucket: str = ""
    """The object store holding it: the outputs bucket of the region whose worker made it."""
    format: OutputType
    content_type: str
    width: int
    height: int
    size: int
    sha256: Sha256Hex


class JobStatus(StrEnum):
    """Where a job ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"


class JobError(ApiModel):
    """Why a job failed."""

    reason: FailureReason
    message: str


class JobResult(ApiModel):
    """The outcome of a job: the result event, and the body of its completion record."""

    v: Literal[1] = RESULT_SCHEMA_VERSION
    job_id: JobId
    pipeline: PipelineRef
    generation: int = Field(ge=0)
    """The pipeline generation the worker ran."""
    status: JobStatus
    source_key: Sha256Hex
    outputs: list[OutputRef] = Field(default_factory=list)
    error: JobError | None = None
    region: str = ""
    worker: str = ""
    """The worker (pod or process) that produced the result."""
    attempts: int = Field(default=1, ge=1)
    submitted_at: datetime | None = None
    finished_at: datetime = Field(default_factory=utc_now)
    duration_seconds: float = Field(default=0.0, ge=0.0)


class DeadLetter(ApiModel):
    """A job that will not be retried, kept for an operator to inspect or replay.

    `job` is the parsed job; a message that could not be parsed as a job keeps its text in `raw`.
    """

    v: Literal[1] = RESULT_SCHEMA_VERSION
    job: JobMessage | None = None
    raw: str | None = None
    """The message as received, when it was not a valid job (then `job` is absent)."""
    error: JobError
    attempts: int = Field(ge=1)
    worker: str = ""
    recorded_at: datetime = Field(default_factory=utc_now)


class WorkerReport(ApiModel):
    """A worker's running totals, put in the worker-stats bucket every few seconds.

    The autoscaler turns the differences between two reports into a service rate per replica:
    jobs served per second of busy time (time with at least one job in hand). Totals rather than
    rates, so a missed report loses nothing and a restarted worker shows up as a new key.
    """

    v: Literal[1] = RESULT_SCHEMA_VERSION
    worker: str
    pipeline: PipelineRef
    region: str = ""
    generation: int = Field(default=0, ge=0)
    served: int = Field(default=0, ge=0)
    """Jobs that ran to an outcome (succeeded or failed), not counting skipped duplicates."""
    failed: int = Field(default=0, ge=0)
    """Of `served`, the jobs that failed, for good or to be retried."""
    busy_seconds: float = Field(default=0.0, ge=0.0)
    latency_counts: list[NonNegativeInt] = Field(default_factory=list, max_length=64)
    """Of `served`, the jobs by latency bucket (`pixelmesh.api.latency`); empty: not counted."""
    in_flight: int = Field(default=0, ge=0)
    threads: int = Field(default=0, ge=0)
    reported_at: datetime = Field(default_factory=utc_now)
