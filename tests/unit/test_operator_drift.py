"""Drift: a child is patched when our spec changed or a field we set was edited, and only then."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

from pixelmesh.api.messages import PipelineRef
from pixelmesh.api.resources import ImagePipelineSpec
from pixelmesh.operator.builders.pipeline_file import pipeline_revision
from pixelmesh.operator.builders.workers import build_worker_deployment
from pixelmesh.operator.drift import ChildAction, contains, parse_quantity, plan_child, plan_scale
from pixelmesh.operator.target import RegionPlacement, WorkerTarget

REF = PipelineRef(namespace="media", name="thumbnails")


def deployment(spec: dict[str, Any] | None = None) -> dict[str, Any]:
    parsed = ImagePipelineSpec.model_validate(
        spec or {"variants": [{"name": "thumb"}], "worker": {"resources": {"requests": {"cpu": "0.5"}}}}
    )
    placement = RegionPlacement("local", "", 100, ("nats://127.0.0.1:4222",))
    return build_worker_deployment(
        WorkerTarget(REF, "uid", parsed, pipeline_revision(REF, parsed.pipeline(), 1), placement)
    )


def as_stored(desired: dict[str, Any]) -> dict[str, Any]:
    """What the API server returns: defaults filled in, status, quantities canonical, our replicas kept."""
    stored = copy.deepcopy(desired)
    stored["metadata"].update({"resourceVersion": "7", "generation": 2, "uid": "x"})
    stored["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "2"
    stored["spec"]["replicas"] = 5
    stored["spec"]["progressDeadlineSeconds"] = 600
    pod = stored["spec"]["template"]["spec"]
    pod["dnsPolicy"] = "ClusterFirst"
    container = pod["containers"][0]
    container["terminationMessagePath"] = "/dev/termination-log"
    container["resources"]["requests"]["cpu"] = "500m"
    for variable in container["env"]:
        if "valueFrom" in variable:
            variable["valueFrom"]["fieldRef"]["apiVersion"] = "v1"
    stored["status"] = {"replicas": 5}
    return stored


def test_quantities_are_compared_by_value() -> None:
    assert parse_quantity("500m") == Decimal("0.5")
    assert parse_quantity("1Gi") == Decimal(2**30)
    assert parse_quantity("1e3") == Decimal(1000)
    assert parse_quantity("25%") is None
    assert contains({"requests": {"cpu": "0.5"}}, {"requests": {"cpu": "500m"}})
    assert not contains({"requests": {"cpu": "1"}}, {"requests": {"cpu": "500m"}})
    assert not contains({"image": "0.5"}, {"image": "500m"}), "only resource fields are quantities"


def test_a_stored_child_with_server_defaults_is_not_drift() -> None:
    desired = deployment()
    plan = plan_child(desired, as_stored(desired))
    assert plan.action is ChildAction.NONE


def test_an_absent_child_is_created_whole() -> None:
    desired = deployment()
    plan = plan_child(desired, None)
    assert plan.action is ChildAction.CREATE
    assert plan.body == desired


def test_a_hand_edit_of_a_field_we_set_is_patched_back() -> None:
    desired = deployment()
    edited = as_stored(desired)
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = "someone/else:latest"
    plan = plan_child(desired, edited)
    assert plan.action is ChildAction.PATCH
    assert plan.reason == "edited by hand"
    assert (
        plan.body["spec"]["template"]["spec"]["containers"][0]["image"]
        == desired["spec"]["template"]["spec"]["containers"][0]["image"]
    )
    assert "replicas" not in plan.body["spec"], "the patch never touches the replica count"


def test_a_new_spec_is_patched_even_without_a_visible_difference() -> None:
    desired = deployment()
    stored = as_stored(desired)
    stored["metadata"]["annotations"]["pixelmesh.io/spec-hash"] = "older"
    assert plan_child(desired, stored).action is ChildAction.PATCH


def test_an_optional_field_we_stopped_setting_is_removed_with_null() -> None:
    with_priority = deployment({"variants": [{"name": "thumb"}], "worker": {"priorityClassName": "images"}})
    without = deployment({"variants": [{"name": "thumb"}]})
    stored = as_stored(with_priority)
    plan = plan_child(without, stored)
    assert plan.action is ChildAction.PATCH
    assert plan.body["spec"]["template"]["spec"]["priorityClassName"] is None
    assert "nodeSelector" not in plan.body["spec"]["template"]["spec"], "only what exists is nulled"


def test_labels_and_annotations_others_add_are_not_drift() -> None:
    desired = deployment()
    stored = as_stored(desired)
    stored["metadata"]["labels"]["team"] = "media"
    stored["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"] = "x"
    assert plan_child(desired, stored).action is ChildAction.NONE


def test_scale_writes_only_a_different_count() -> None:
    assert plan_scale(3, 3).write is False
    assert plan_scale(3, 1).write is True
    assert plan_scale(None, 7).write is False, "no decision: the count is someone else's"
