"""One home for the names of JetStream resources, subjects and keys.

The operator creates these resources, the gateway publishes into them and the worker consumes from
them; all three compute the names here so they cannot disagree.

Kubernetes names may contain `.` (ImagePipeline names are DNS subdomains), NATS subject tokens and
stream names may not. No Kubernetes name contains `_`, so `<namespace>_<name>` with dots mapped to
`_` cannot collide: a second pair could only map to the same string through a name holding `_`.
"""

from __future__ import annotations

from pixelmesh.api.messages import PipelineRef

SUBJECT_ROOT = "pixelmesh"

SOURCES_BUCKET = "pixelmesh-sources"
"""Object store of sources, keyed by sha256: identical uploads are stored once per region."""
COMPLETIONS_BUCKET = "pixelmesh-completions"
"""KV: job id -> JobResult. Its existence means the job is done (idempotency)."""
DEAD_LETTERS_BUCKET = "pixelmesh-deadletters"
"""KV: job id -> DeadLetter."""
ACCEPTED_BUCKET = "pixelmesh-accepted"
"""KV: job id -> the accepted JobMessage, so status lookups know a pending job."""
ROUTING_BUCKET = "pixelmesh-routing"
"""KV: `<namespace>.<name>` -> routing table entry (effective weight per region), written by the operator."""
WORKER_STATS_BUCKET = "pixelmesh-workers"
"""KV: per-worker heartbeats with service-rate figures, read by the autoscaler."""


def token(ref: PipelineRef) -> str:
    """The pipeline as one subject token / stream-name fragment: `<namespace>_<name>`."""
    return f"{ref.namespace}_{ref.name}".replace(".", "_")


def job_stream(ref: PipelineRef) -> str:
    """The work-queue stream holding the pipeline's jobs in one region."""
    return f"PIXELMESH_JOBS_{token(ref)}"


def job_subject(ref: PipelineRef) -> str:
    """The subject jobs of the pipeline are published on."""
    return f"{SUBJECT_ROOT}.jobs.{token(ref)}"


def worker_consumer(ref: PipelineRef) -> str:
    """The durable pull consumer the pipeline's workers share."""
    return f"workers_{token(ref)}"


def result_subject(ref: PipelineRef, job_id: str) -> str:
    """The subject a job's result event is published on."""
    return f"{SUBJECT_ROOT}.results.{token(ref)}.{job_id}"


def result_wildcard(ref: PipelineRef | None = None) -> str:
    """Subscribe to every result of one pipeline, or of all pipelines."""
    if ref is None:
        return f"{SUBJECT_ROOT}.results.>"
    return f"{SUBJECT_ROOT}.results.{token(ref)}.*"


def outputs_bucket(ref: PipelineRef) -> str:
    """Object store of the pipeline's outputs (one per pipeline so a `Delete` policy can drop it)."""
    return f"pixelmesh-out-{token(ref)}"


def output_key(ref: PipelineRef, generation: int, source_sha256: str, variant: str, extension: str) -> str:
    """Deterministic output key: a redelivered job rewrites the same object with the same bytes."""
    return f"{ref.namespace}/{ref.name}/{generation}/{source_sha256}/{variant}.{extension}"


def routing_key(ref: PipelineRef) -> str:
    """The pipeline's key in the routing table bucket."""
    return f"{ref.namespace}.{ref.name}"


def worker_stats_key(ref: PipelineRef, worker: str) -> str:
    """A worker's key in the worker-stats bucket: `<pipeline token>.<worker>`."""
    return f"{token(ref)}.{worker}"


def worker_stats_filter(ref: PipelineRef) -> str:
    """Matches the keys of every worker of one pipeline."""
    return f"{token(ref)}.*"
