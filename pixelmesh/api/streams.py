"""One home for the names of JetStream resources, subjects and keys.

The operator creates these resources, the gateway publishes into them and the worker consumes from
them; all three compute the names here so they cannot disagree.

Regions are joined into one NATS supercluster, which is one JetStream domain: stream names, bucket
names and the subjects streams listen on are global across regions. So everything that lives in a
region carries the region's name, and nothing a region owns can collide with another's. Result
events are core NATS subjects without a stream: they stay region-free, so a caller in any region
hears the result wherever the job ran.

Kubernetes names may contain `.` (ImagePipeline names are DNS subdomains), NATS subject tokens and
stream names may not. No Kubernetes name contains `_`, so `<namespace>_<name>` with dots mapped to
`_` cannot collide: a second pair could only map to the same string through a name holding `_`.
Region names are DNS labels (no `_`, no `.`), so they can lead a name without ambiguity.

Replication between regions (mirrors of job streams, replicas of completion records and sources)
is named here too: `replica_stream(origin stream, region)` is the copy of a stream held in
another region. A mirror keeps the origin's subjects, so a record is looked up in a replica under
the same subject as in its origin.
"""

from __future__ import annotations

from pixelmesh.api.messages import PipelineRef

SUBJECT_ROOT = "pixelmesh"
GEO = "geo"
"""Stands in for a region name for what is placed on the stretched (cross-region) NATS cluster."""


# --- per-region buckets ---------------------------------------------------------------------------


def sources_bucket(region: str) -> str:
    """Object store of sources in `region`, keyed by sha256: identical uploads are stored once."""
    return f"pixelmesh-sources-{region}"


def completions_bucket(region: str) -> str:
    """KV: job id -> JobResult, written by the region's workers. Existence means the job is done."""
    return f"pixelmesh-completions-{region}"


def dead_letters_bucket(region: str) -> str:
    """KV: job id -> DeadLetter, written by the region's workers."""
    return f"pixelmesh-deadletters-{region}"


def accepted_bucket(region: str) -> str:
    """KV: job id -> the accepted JobMessage, so status lookups know a pending job."""
    return f"pixelmesh-accepted-{region}"


def routing_bucket(region: str) -> str:
    """KV: `<namespace>.<name>` -> routing table entry, as the gateways of `region` read it.

    The operator writes the origin (in its own region); every other region holds a mirror of it
    under this name, so a region cut off from the operator still routes by the last table it saw.
    """
    return f"pixelmesh-routing-{region}"


def worker_stats_bucket(region: str) -> str:
    """KV: per-worker heartbeats with service-rate figures, read by the autoscaler."""
    return f"pixelmesh-workers-{region}"


def kv_stream(bucket: str) -> str:
    """The stream behind a KV bucket."""
    return f"KV_{bucket}"


def kv_subject(bucket: str, key: str) -> str:
    """The subject a KV bucket stores `key` under (in its stream and in any mirror of it)."""
    return f"$KV.{bucket}.{key}"


def object_stream(bucket: str) -> str:
    """The stream behind an object store."""
    return f"OBJ_{bucket}"


def replica_stream(origin_stream: str, region: str) -> str:
    """The mirror of `origin_stream` held in `region`."""
    return f"REPLICA_{region}_{origin_stream}"


# --- per-pipeline resources -----------------------------------------------------------------------


def token(ref: PipelineRef) -> str:
    """The pipeline as one subject token / stream-name fragment: `<namespace>_<name>`."""
    return f"{ref.namespace}_{ref.name}".replace(".", "_")


def job_stream(ref: PipelineRef, region: str) -> str:
    """The work-queue stream holding the pipeline's jobs accepted in `region`."""
    return f"PIXELMESH_JOBS_{region}_{token(ref)}"


def job_subject(ref: PipelineRef, region: str) -> str:
    """The subject jobs of the pipeline accepted in `region` are published on."""
    return f"{SUBJECT_ROOT}.jobs.{region}.{token(ref)}"


def worker_consumer(ref: PipelineRef) -> str:
    """The durable pull consumer a region's workers share on their job stream."""
    return f"workers_{token(ref)}"


MIRROR_PREFIX = "PIXELMESH_MIRROR_"


def job_mirror_stream(ref: PipelineRef, origin: str, backup: str) -> str:
    """The mirror of `origin`'s job stream, held in its backup region `backup`."""
    return f"{MIRROR_PREFIX}{origin}_{backup}_{token(ref)}"


def parse_job_mirror_stream(name: str) -> tuple[str, str, str] | None:
    """(origin, backup, pipeline token) of a job mirror's name; None for any other stream."""
    if not name.startswith(MIRROR_PREFIX):
        return None
    parts = name.removeprefix(MIRROR_PREFIX).split("_", 2)
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 and all(parts) else None


def drain_consumer(ref: PipelineRef, origin: str) -> str:
    """The durable consumer the backup region's workers drain a failed region's jobs with."""
    return f"drain_{origin}_{token(ref)}"


def result_subject(ref: PipelineRef, job_id: str) -> str:
    """The subject a job's result event is published on (region-free: heard in every region)."""
    return f"{SUBJECT_ROOT}.results.{token(ref)}.{job_id}"


def result_wildcard(ref: PipelineRef | None = None) -> str:
    """Subscribe to every result of one pipeline, or of all pipelines."""
    if ref is None:
        return f"{SUBJECT_ROOT}.results.>"
    return f"{SUBJECT_ROOT}.results.{token(ref)}.*"


def outputs_bucket(ref: PipelineRef, region: str) -> str:
    """Object store of the pipeline's outputs made in `region` (one per pipeline and region, so a
    `Delete` policy can drop it)."""
    return f"pixelmesh-out-{region}-{token(ref)}"


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
