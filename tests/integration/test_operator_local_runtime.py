"""The reconciler core with the process runtime: real nats-server, real worker processes.

This is what the local stack runs. The same core drives Deployments in the Kubernetes tests; here
it runs `python -m pixelmesh.worker` processes and reads their `/readyz`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from pixelmesh.api import streams
from pixelmesh.api.messages import PipelineRef
from pixelmesh.api.resources import PipelinePhase, RegionPoolSpec
from pixelmesh.natsserver import NatsServer, free_port
from pixelmesh.operator.local import LocalControlPlane
from pixelmesh.operator.reconcile import PipelineObject, PipelineOutcome
from pixelmesh.operator.status import ConditionType, Reason, find_condition

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
REF = PipelineRef(namespace="default", name="thumbnails")

pytestmark = pytest.mark.slow


@pytest.fixture
async def plane(tmp_path: Path, nats_server: NatsServer) -> AsyncIterator[LocalControlPlane]:
    # A short fetch timeout lets idle workers stop at once (they finish a pending pull first).
    quick = {"PIXELMESH_FETCH_TIMEOUT_SECONDS": "0.5", "PIXELMESH_LOG_FORMAT": "text"}
    control = LocalControlPlane(tmp_path / "data", nats_urls=(nats_server.url,), worker_env=quick)
    yield control
    await control.close()


async def until_ready(plane: LocalControlPlane, within: float = 30.0) -> dict[PipelineRef, PipelineOutcome]:
    deadline = time.monotonic() + within
    while True:
        outcomes = await plane.reconcile_once()
        if outcomes and all(o.ready for o in outcomes.values()):
            return outcomes
        if time.monotonic() > deadline:
            pytest.fail(f"not ready after {within}s: {[o.status.conditions for o in outcomes.values()]}")
        await asyncio.sleep(0.3)


def ready_reason(outcome: PipelineOutcome) -> str:
    condition = find_condition(outcome.status.conditions, ConditionType.READY)
    assert condition is not None
    return condition.reason


def thumbnails_spec(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "variants": [
            {
                "name": "thumb",
                "steps": [{"thumbnail": {"width": 64}}],
                "format": {"type": "webp", "quality": 70},
            }
        ],
        "autoscaling": {"minReplicas": 1, "maxReplicas": 2},
        "worker": {"drainTimeout": "2s"},
    }
    spec.update(changes)
    return spec


async def test_an_example_pipeline_gets_its_stream_buckets_and_ready_worker_processes(
    plane: LocalControlPlane, js: JetStreamContext
) -> None:
    plane.load([EXAMPLES / "imagepipeline-thumbnails.yaml"])
    outcomes = await until_ready(plane)
    status = outcomes[REF].status
    assert status.phase is PipelinePhase.READY
    assert (status.desired_replicas, status.ready_replicas, status.backlog) == (1, 1, 0)
    assert status.regions[0].region == "local"
    await js.stream_info(streams.job_stream(REF, "local"))
    await js.consumer_info(streams.job_stream(REF, "local"), streams.worker_consumer(REF))
    for bucket in (
        streams.completions_bucket("local"),
        streams.routing_bucket("local"),
        streams.worker_stats_bucket("local"),
    ):
        await js.key_value(bucket)
    await js.object_store(streams.sources_bucket("local"))
    assert len(plane.runtime.pids(REF)) == 1


async def test_a_variant_change_rolls_the_workers_and_a_resync_changes_nothing(
    plane: LocalControlPlane,
) -> None:
    obj = PipelineObject("default", "thumbnails", 1, thumbnails_spec())
    reconciler = plane.reconciler
    outcome = await reconciler.reconcile_pipeline(obj, {})
    for _ in range(100):
        if outcome.ready:
            break
        await asyncio.sleep(0.3)
        obj = PipelineObject("default", "thumbnails", 1, thumbnails_spec(), outcome.status.to_wire())
        outcome = await reconciler.reconcile_pipeline(obj, {})
    assert outcome.ready
    pids = plane.runtime.pids(REF)
    settled = PipelineObject("default", "thumbnails", 1, thumbnails_spec(), outcome.status.to_wire())
    again = await reconciler.reconcile_pipeline(settled, {})
    assert again.patch == {}, "a resync with nothing changed writes no status"
    assert again.events == ()
    assert plane.runtime.pids(REF) == pids

    bounds_only = thumbnails_spec(autoscaling={"minReplicas": 1, "maxReplicas": 5})
    moved = await reconciler.reconcile_pipeline(
        PipelineObject("default", "thumbnails", 2, bounds_only, settled.status), {}
    )
    assert plane.runtime.pids(REF) == pids, "changing only the replica bounds does not roll workers"
    assert moved.status.pipeline_generation == 1

    changed = thumbnails_spec(
        variants=[
            {
                "name": "thumb",
                "steps": [{"thumbnail": {"width": 64}}],
                "format": {"type": "webp", "quality": 40},
            }
        ]
    )
    rolled = await reconciler.reconcile_pipeline(
        PipelineObject("default", "thumbnails", 3, changed, moved.status.to_wire()), {}
    )
    new_pids = plane.runtime.pids(REF)
    assert len(new_pids) == 1
    assert set(new_pids).isdisjoint(pids)
    assert rolled.status.pipeline_generation == 3
    assert rolled.status.pipeline_hash != outcome.status.pipeline_hash


async def test_a_deleted_stream_and_a_dead_worker_come_back(
    plane: LocalControlPlane, js: JetStreamContext
) -> None:
    plane.load([EXAMPLES / "imagepipeline-thumbnails.yaml"])
    await until_ready(plane)
    await js.delete_stream(streams.job_stream(REF, "local"))
    (pid,) = plane.runtime.pids(REF)
    os.kill(pid, signal.SIGKILL)
    await until_ready(plane)
    await js.stream_info(streams.job_stream(REF, "local"))
    (new_pid,) = plane.runtime.pids(REF)
    assert new_pid != pid


async def test_an_invalid_spec_is_reported_with_a_warning_and_heals_when_fixed(
    plane: LocalControlPlane,
) -> None:
    invalid = thumbnails_spec(
        variants=[
            {"name": "thumb", "format": {"type": "png", "quality": 70}}
        ]  # quality does not apply to png
    )
    outcome = await plane.reconciler.reconcile_pipeline(
        PipelineObject("default", "thumbnails", 1, invalid), {}
    )
    assert ready_reason(outcome) == Reason.INVALID_SPEC
    assert outcome.status.phase is PipelinePhase.FAILED
    (warning,) = [e for e in outcome.events if e.type == "Warning"]
    assert warning.reason == Reason.INVALID_SPEC
    assert "quality" in warning.message
    assert plane.runtime.pids(REF) == [], "nothing is started from a spec that cannot be acted on"

    fixed = PipelineObject("default", "thumbnails", 2, thumbnails_spec(), outcome.status.to_wire())
    for _ in range(100):
        outcome = await plane.reconciler.reconcile_pipeline(fixed, {})
        if outcome.ready:
            break
        fixed = PipelineObject("default", "thumbnails", 2, thumbnails_spec(), outcome.status.to_wire())
        await asyncio.sleep(0.3)
    assert outcome.ready


async def test_a_missing_pool_and_an_unreachable_nats_are_conditions_that_heal(
    plane: LocalControlPlane, nats_server: NatsServer
) -> None:
    spec = thumbnails_spec(regions=[{"pool": "eu-west"}])
    obj = PipelineObject("default", "thumbnails", 1, spec)
    outcome = await plane.reconciler.reconcile_pipeline(obj, {})
    assert ready_reason(outcome) == Reason.POOL_NOT_FOUND
    ready = find_condition(outcome.status.conditions, ConditionType.READY)
    assert ready is not None
    assert "RegionPool eu-west does not exist" in ready.message

    dead = RegionPoolSpec.model_validate(
        {"region": "eu-west", "nats": {"urls": [f"nats://127.0.0.1:{free_port()}"]}}
    )
    obj = PipelineObject("default", "thumbnails", 1, spec, outcome.status.to_wire())
    outcome = await plane.reconciler.reconcile_pipeline(obj, {"eu-west": dead})
    assert ready_reason(outcome) == Reason.NATS_UNREACHABLE
    assert outcome.status.phase is PipelinePhase.DEGRADED
    assert any(e.type == "Warning" and e.reason == Reason.NATS_UNREACHABLE for e in outcome.events)

    alive = RegionPoolSpec.model_validate({"region": "eu-west", "nats": {"urls": [nats_server.url]}})
    for _ in range(100):
        obj = PipelineObject("default", "thumbnails", 1, spec, outcome.status.to_wire())
        outcome = await plane.reconciler.reconcile_pipeline(obj, {"eu-west": alive})
        if outcome.ready:
            break
        await asyncio.sleep(0.3)
    assert outcome.ready
    assert outcome.status.regions[0].region == "eu-west"


async def test_deleting_a_pipeline_under_the_delete_policy_removes_workers_and_streams(
    plane: LocalControlPlane, js: JetStreamContext
) -> None:
    spec = thumbnails_spec(deletionPolicy="Delete")
    obj = PipelineObject("default", "thumbnails", 1, spec)
    outcome = await plane.reconciler.reconcile_pipeline(obj, {})
    assert plane.runtime.pids(REF)
    await js.stream_info(streams.job_stream(REF, "local"))
    await plane.reconciler.delete_pipeline(
        PipelineObject("default", "thumbnails", 1, spec, outcome.status.to_wire()), {}
    )
    assert plane.runtime.pids(REF) == []
    with pytest.raises(NotFoundError):
        await js.stream_info(streams.job_stream(REF, "local"))
    await js.key_value(streams.completions_bucket("local"))  # the region's shared buckets stay
