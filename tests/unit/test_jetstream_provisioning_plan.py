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
    build_drain_consumer,
    build_job_mirror,
    build_job_stream,
    build_pipeline_resources,
    build_region_buckets,
    build_worker_consumer,
    plan_change,
)

REF = PipelineRef(namespace="media", name="thumbs.v2")


def test_job_stream_is_a_work_queue_on_the_pipeline_subject_with_a_duplicate_window() -> None:
    stream = build_job_stream(REF, PipelineStreamSettings(replicas=3, duplicate_window_seconds=300))
    assert stream.name == streams.job_stream(REF, "local") == "PIXELMESH_JOBS_local_media_thumbs_v2"
    assert stream.subjects == (streams.job_subject(REF, "local"),)
    assert stream.retention is Retention.WORK_QUEUE
    assert stream.replicas == 3
    assert stream.duplicate_window_seconds == 300
    assert stream.discard is Discard.NEW, "a full queue refuses new jobs instead of dropping accepted ones"


def test_worker_consumer_is_durable_on_the_job_stream_with_the_retry_settings() -> None:
    settings = PipelineStreamSettings(
        ack_wait_seconds=45, max_deliver=7, backoff_seconds=(10, 60), max_ack_pending=64
    )
    consumer = build_worker_consumer(REF, settings)
    assert (consumer.stream, consumer.durable) == (
        streams.job_stream(REF, "local"),
        streams.worker_consumer(REF),
    )
    assert consumer.filter_subject == streams.job_subject(REF, "local")
    assert (consumer.ack_wait_seconds, consumer.max_deliver) == (45, 7)
    assert consumer.backoff_seconds == (10, 60)
    assert consumer.max_ack_pending == 64


def test_pipeline_resources_include_an_outputs_store_named_for_the_pipeline() -> None:
    resources = build_pipeline_resources(REF, PipelineStreamSettings(storage=Storage.MEMORY))
    assert resources.outputs.bucket == streams.outputs_bucket(REF, "local")
    assert resources.outputs.storage is Storage.MEMORY
    assert resources.stream.storage is Storage.MEMORY


def test_region_buckets_are_the_shared_buckets_named_in_the_streams_module() -> None:
    buckets = build_region_buckets(RegionBucketSettings(replicas=3, completions_ttl_seconds=3600))
    kv = {b.bucket: b for b in buckets.key_values}
    assert set(kv) == {
        streams.completions_bucket("local"),
        streams.dead_letters_bucket("local"),
        streams.accepted_bucket("local"),
        streams.routing_bucket("local"),
        streams.worker_stats_bucket("local"),
    }
    assert kv[streams.completions_bucket("local")].ttl_seconds == 3600
    assert kv[streams.routing_bucket("local")].ttl_seconds == 0, "the routing table never expires"
    assert all(b.replicas == 3 for b in kv.values())
    assert [s.bucket for s in buckets.object_stores] == [streams.sources_bucket("local")]


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


def test_a_region_holds_replicas_of_its_peers_records_and_of_the_sources_it_backs_up() -> None:
    buckets = build_region_buckets(
        RegionBucketSettings(region="r2", peers=("r1", "r3"), backed_up=("r1",), routing_origin="r1")
    )
    mirrors = {m.name: m for m in buckets.mirrors}
    assert mirrors["REPLICA_r2_KV_pixelmesh-completions-r1"].origin == "KV_pixelmesh-completions-r1"
    assert mirrors["REPLICA_r2_KV_pixelmesh-completions-r3"].origin == "KV_pixelmesh-completions-r3"
    assert mirrors["REPLICA_r2_OBJ_pixelmesh-sources-r1"].origin == "OBJ_pixelmesh-sources-r1"
    assert "REPLICA_r2_OBJ_pixelmesh-sources-r3" not in mirrors, "r2 is not r3's backup"
    routing = mirrors[streams.kv_stream(streams.routing_bucket("r2"))]
    assert routing.origin == streams.kv_stream(streams.routing_bucket("r1"))
    assert routing.subject_transform == ("$KV.pixelmesh-routing-r1.>", "$KV.pixelmesh-routing-r2.>")
    assert routing.direct
    assert routing.history == 1
    assert streams.routing_bucket("r2") not in {kv.bucket for kv in buckets.key_values}, (
        "only the operator's own region holds the writable routing table"
    )


def test_the_job_mirror_lives_in_the_backup_and_keeps_jobs_as_long_as_the_origin_would() -> None:
    backup = PipelineStreamSettings(region="r2", max_age_seconds=3600, placement_cluster="r2")
    mirror = build_job_mirror(REF, "r1", backup)
    assert mirror.origin == streams.job_stream(REF, "r1")
    assert mirror.name == streams.job_mirror_stream(REF, "r1", "r2") != streams.job_stream(REF, "r2")
    assert streams.parse_job_mirror_stream(mirror.name) == ("r1", "r2", "media_thumbs_v2")
    assert (mirror.max_age_seconds, mirror.placement_cluster) == (3600, "r2")
    drain = build_drain_consumer(REF, "r1", backup, start_sequence=42)
    assert (drain.stream, drain.filter_subject) == (mirror.name, streams.job_subject(REF, "r1"))
    assert drain.start_sequence == 42
    assert drain.durable != build_worker_consumer(REF, backup).durable or drain.stream != mirror.origin
