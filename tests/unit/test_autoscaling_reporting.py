"""Where the autoscaler's decisions show: the region's status entry, and Events kopf-style."""

from __future__ import annotations

from datetime import UTC, datetime

from pixelmesh.api.messages import PipelineRef
from pixelmesh.api.resources import ImagePipelineStatus, PipelineRegionStatus
from pixelmesh.operator import names
from pixelmesh.operator.builders.events import MAX_MESSAGE, build_pipeline_event
from pixelmesh.operator.status import record_scaling

REF = PipelineRef(namespace="media", name="thumbnails")


def status() -> ImagePipelineStatus:
    return ImagePipelineStatus(
        regions=[
            PipelineRegionStatus(region="eu-west", desired_replicas=2, scaling_reason="idle"),
            PipelineRegionStatus(region="us-east", desired_replicas=3, scaling_reason="backlog"),
        ],
        desired_replicas=5,
    )


def test_a_decision_updates_its_regions_desired_replicas_reason_and_the_total() -> None:
    updated = record_scaling(status(), "eu-west", 7, "capacity-capped")
    assert updated is not None
    eu, us = updated.regions
    assert (eu.desired_replicas, eu.scaling_reason) == (7, "capacity-capped")
    assert (us.desired_replicas, us.scaling_reason) == (3, "backlog")
    assert updated.desired_replicas == 10


def test_a_region_the_reconciler_has_not_reported_yet_is_left_for_the_next_tick() -> None:
    assert record_scaling(status(), "ap-south", 4, "backlog") is None


def test_an_unchanged_decision_changes_nothing() -> None:
    assert record_scaling(status(), "us-east", 3, "backlog") == status()


def test_events_name_the_pipeline_and_the_operator_as_kopf_does() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    event = build_pipeline_event(
        REF, "uid-1", type_="Warning", reason="CapacityCapped", message="x" * 5000, now=now
    )
    assert event["metadata"] == {"generateName": "thumbnails.", "namespace": "media"}
    assert event["involvedObject"] == {
        "apiVersion": names.API_VERSION,
        "kind": "ImagePipeline",
        "name": "thumbnails",
        "namespace": "media",
        "uid": "uid-1",
    }
    assert (event["type"], event["reason"]) == ("Warning", "CapacityCapped")
    assert len(event["message"]) == MAX_MESSAGE
    assert event["firstTimestamp"] == event["lastTimestamp"] == "2026-01-02T03:04:05Z"
    assert event["source"] == {"component": names.MANAGED_BY}
