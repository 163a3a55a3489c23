"""The pure JetStream builders: what a pipeline and a region get, and what a change to them means."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pixelmesh.api import streams
from pixelmesh.api.messages import PipelineRef
from pixelmesh.operator.jetstream import (
    ChangeKind,
    Discard,
    PipelineStreamSettings,
    RegionBucketSettings,
    Retention,
    Storage,
    build_job_stream,
    build_pipeline_resources,
    build_region_buckets,
    build_worker_consumer,
    plan_change,
)

REF = PipelineRef(namespace="media", name="thumbs.v2")


def test_job_stream_is_a_work_queue_on_the_pipeline_subject_with_a_duplicate_window() -> None:
    stream = build_job_stream(REF, PipelineStreamSettings(replicas=3, duplicate_window_seconds=300))
    assert stream.name == streams.job_stream(REF) == "PIXELMESH_JOBS_media_thumbs_v2"
    assert stream.subjects == (streams.job_subject(REF),)
    assert stream.retention is Retention.WORK_QUEUE
    assert stream.replicas == 3
    assert stream.duplicate_window_seconds == 300
    assert stream.discard is Discard.NEW, "a full queue refuses new jobs instead of dropping accepted ones"


def test_worker_consumer_is_durable_on_the_job_stream_with_the_retry_settings() -> None:
    settings = PipelineStreamSettings(
        ack_wait_seconds=45, max_deliver=7, backoff_seconds=(10, 60), max_ack_pending=64
    )
    consumer = build_worker_consumer(REF, settings)
    assert (consumer.stream, consumer.durable) == (streams.job_stream(REF), streams.worker_consumer(REF))
    assert consumer.filter_subject == streams.job_subject(REF)
    assert (consumer.ack_wait_seconds, consumer.max_deliver) == (45, 7)
    assert consumer.backoff_seconds == (10, 60)
    assert consumer.max_ack_pending == 64


def test_pipeline_resources_include_an_outputs_store_named_for_the_pipeline() -> None:
    resources = build_pipeline_resources(REF, PipelineStreamSettings(storage=Storage.MEMORY))
    assert resources.outputs.bucket == streams.outputs_bucket(REF)
    assert resources.outputs.storage is Storage.MEMORY
    assert resources.stream.storage is Storage.MEMORY


def test_region_buckets_are_the_shared_buckets_named_in_the_streams_module() -> None:
    buckets = build_region_buckets(RegionBucketSettings(replicas=3, completions_ttl_seconds=3600))
    kv = {b.bucket: b for b in buckets.key_values}
    assert set(kv) == {
        streams.COMPLETIONS_BUCKET,
        streams.DEAD_LETTERS_BUCKET,
        streams.ACCEPTED_BUCKET,
        streams.ROUTING_BUCKET,
        streams.WORKER_STATS_BUCKET,
    }
    assert kv[streams.COMPLETIONS_BUCKET].ttl_seconds == 3600
    assert kv[streams.ROUTING_BUCKET].ttl_seconds == 0, "the routing table never expires"
    assert all(b.replicas == 3 for b in kv.values())
    assert [s.bucket for s in buckets.object_stores] == [streams.SOURCES_BUCKET]


def test_builders_are_deterministic() -> None:
    settings = PipelineStreamSettings(max_deliver=3)
    assert build_pipeline_resources(REF, settings) == build_pipeline_resources(REF, settings)


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"replicas": 0}, "replicas"),
        ({"ack_wait_seconds": 0}, "ackWait"),
        ({"max_deliver": 0}, "maxDeliver"),
        ({"max_deliver": 2, "backoff_seconds": (1, 2, 3)}, "backoff"),
        ({"backoff_seconds": (1, -2)}, "backoff delay"),
        ({"max_age_seconds": 60, "duplicate_window_seconds": 120}, "duplicate window"),
    ],
)
def test_invalid_settings_are_refused_with_the_reason(settings: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        PipelineStreamSettings(**settings)  # type: ignore[arg-type]


def test_plan_creates_what_is_absent_and_leaves_what_matches() -> None:
    desired = build_job_stream(REF, PipelineStreamSettings())
    assert plan_change(desired, None).kind is ChangeKind.CREATE
    assert plan_change(desired, desired).kind is ChangeKind.NONE


def test_plan_updates_mutable_fields_in_place() -> None:
    desired = build_job_stream(REF, PipelineStreamSettings(max_age_seconds=3600))
    observed = replace(desired, max_age_seconds=7200, replicas=3)
    change = plan_change(desired, observed)
    assert change.kind is ChangeKind.UPDATE
    assert set(change.fields) == {"max_age_seconds", "replicas"}


def test_plan_reports_a_conflict_instead_of_recreating_a_stream_whose_retention_differs() -> None:
    desired = build_job_stream(REF, PipelineStreamSettings())
    observed = replace(desired, retention=Retention.LIMITS, max_age_seconds=1)
    change = plan_change(desired, observed)
    assert change.kind is ChangeKind.CONFLICT
    assert change.fields == ("retention",)
