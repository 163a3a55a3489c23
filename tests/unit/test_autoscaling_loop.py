"""The autoscaler's loop over in-memory ports: it measures, decides, shares capacity and applies.

The runtime, the queue reader and the reporter here are plain in-memory implementations of the
operator's own ports (`WorkerRuntime`, `QueueReader`, `ScalingReporter`), with a settable clock, so
each tick is deterministic. NATS and Kubernetes appear in the integration tests.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

import pytest

from pixelmesh.api.messages import PipelineRef
from pixelmesh.api.resources import ImagePipelineSpec
from pixelmesh.operator import metrics
from pixelmesh.operator.autoscaler import Autoscaler, ScalingChange
from pixelmesh.operator.autoscaling.measure import QueueReading, WorkerTotals
from pixelmesh.operator.builders.pipeline_file import pipeline_revision
from pixelmesh.operator.reconcile import SingleRuntime
from pixelmesh.operator.runtime import Applied, PlacedWorkers, RuntimeAction, WorkerObservation
from pixelmesh.operator.target import RegionPlacement, WorkerKey, WorkerTarget

REGION = "eu-west"


@dataclass
class MemoryRuntime:
    """Workers that are a number per fleet."""

    replicas: dict[WorkerKey, int] = field(default_factory=dict)
    writes: list[tuple[str, int]] = field(default_factory=list)

    async def apply(self, target: WorkerTarget, replicas: int) -> Applied:
        self.replicas.setdefault(WorkerKey(target.ref, target.region), replicas)
        return Applied(await self.observe(target))

    async def scale(self, target: WorkerTarget, replicas: int) -> RuntimeAction | None:
        key = WorkerKey(target.ref, target.region)
        if self.replicas.get(key) == replicas:
            return None
        before, self.replicas[key] = self.replicas.get(key), replicas
        self.writes.append((target.ref.name, replicas))
        return RuntimeAction("Scaled", "Deployment", target.names.workers, f"{before} -> {replicas} replicas")

    async def observe(self, target: WorkerTarget) -> WorkerObservation:
        count = self.replicas.get(WorkerKey(target.ref, target.region))
        if count is None:
            return WorkerObservation()
        return WorkerObservation(exists=True, replicas=count, ready=count, available=count, rolled_out=True)

    async def placed(self, ref: PipelineRef) -> list[PlacedWorkers]:
        return []

    async def remove(self, ref: PipelineRef, region: str) -> list[RuntimeAction]:
        return []


@dataclass
class MemoryQueues:
    """Backlogs and sequences set by the test; `None` backlog plays a failed read."""

    backlog: dict[str, int | None] = field(default_factory=dict)
    sequence: dict[str, int] = field(default_factory=dict)
    workers: dict[str, tuple[WorkerTotals, ...]] = field(default_factory=dict)

    async def read_queue(self, placement: RegionPlacement, ref: PipelineRef) -> QueueReading:
        return QueueReading(
            backlog=self.backlog.get(ref.name, 0),
            last_sequence=self.sequence.get(ref.name, 0),
            workers=self.workers.get(ref.name, ()),
        )


@dataclass
class MemoryReporter:
    changes: list[tuple[str, ScalingChange]] = field(default_factory=list)

    async def report(self, target: WorkerTarget, change: ScalingChange) -> bool:
        self.changes.append((target.ref.name, change))
        return True

    def events(self, reason: str) -> list[str]:
        return [note.message for _, change in self.changes for note in change.events if note.reason == reason]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    runtime: MemoryRuntime
    queues: MemoryQueues
    reporter: MemoryReporter
    clock: Clock
    autoscaler: Autoscaler

    def target(self, name: str, capacity: int | None = None, **autoscaling: Any) -> WorkerTarget:
        settings = {"maxReplicas": 10, "targetBacklogPerReplica": 10, "scaleDownDelay": "60s", **autoscaling}
        spec = ImagePipelineSpec.model_validate({"variants": [{"name": "v"}], "autoscaling": settings})
        ref = PipelineRef(namespace="media", name=name)
        placement = RegionPlacement(
            region=REGION, pool="pool-eu", weight=100, nats_urls=("nats://n:4222",), capacity=capacity
        )
        return WorkerTarget(ref, f"uid-{name}", spec, pipeline_revision(ref, spec.pipeline(), 1), placement)

    async def place(self, target: WorkerTarget, replicas: int | None = None) -> None:
        """What a reconcile pass does: create the workers, then ask the policy."""
        applied = await self.runtime.apply(
            target, self.autoscaler.initial(target) if replicas is None else replicas
        )
        self.autoscaler.desired(target, applied.observation, None)

    def count(self, target: WorkerTarget) -> int:
        return self.runtime.replicas[WorkerKey(target.ref, target.region)]

    async def tick_after(self, seconds: float) -> None:
        self.clock.now += seconds
        await self.autoscaler.tick()


@pytest.fixture
def rig() -> Rig:
    runtime, queues, reporter, clock = MemoryRuntime(), MemoryQueues(), MemoryReporter(), Clock()
    autoscaler = Autoscaler(SingleRuntime(runtime), queues, reporter, clock=clock, interval=5.0)
    return Rig(runtime, queues, reporter, clock, autoscaler)


def decisions(name: str, direction: str, reason: str) -> float:
    return (
        metrics.REGISTRY.get_sample_value(
            "pixelmesh_autoscaler_decisions_total",
            {
                "namespace": "media",
                "pipeline": name,
                "region": REGION,
                "direction": direction,
                "reason": reason,
            },
        )
        or 0.0
    )


async def test_a_backlog_scales_up_through_the_runtime_and_shows_in_status_and_metrics(rig: Rig) -> None:
    thumbs = rig.target("spike")
    await rig.place(thumbs)
    assert rig.count(thumbs) == 1
    rig.queues.backlog["spike"] = 45
    before = decisions("spike", "up", "backlog")
    await rig.tick_after(0)
    assert rig.count(thumbs) == 5
    assert decisions("spike", "up", "backlog") == before + 1
    desired = metrics.REGISTRY.get_sample_value(
        "pixelmesh_autoscaler_desired_replicas", {"namespace": "media", "pipeline": "spike", "region": REGION}
    )
    assert desired == 5
    name, change = rig.reporter.changes[-1]
    assert (name, change.desired, change.reason) == ("spike", 5, "backlog")
    assert [note.reason for note in change.events] == ["Scaled"]
    policy = rig.autoscaler.desired(thumbs, WorkerObservation(exists=True, replicas=5), None)
    assert policy is not None
    assert (policy.replicas, policy.reason) == (5, "backlog"), "the reconciler's passes agree"


async def test_nothing_is_decided_before_the_interval_and_unchanged_decisions_report_nothing(
    rig: Rig,
) -> None:
    steady = rig.target("steady")
    await rig.place(steady)
    await rig.tick_after(0)
    reported = len(rig.reporter.changes)
    await rig.tick_after(1.0)
    assert rig.autoscaler.fleet(steady.ref, REGION).next_due > rig.clock.now  # type: ignore[union-attr]
    await rig.tick_after(5.0)
    await rig.tick_after(5.0)
    assert len(rig.reporter.changes) == reported, "no status write while nothing changes"
    assert rig.runtime.writes == []


async def test_a_hand_edited_count_is_put_back_on_the_next_tick(rig: Rig) -> None:
    fleet = rig.target("edited")
    await rig.place(fleet)
    await rig.tick_after(0)
    rig.runtime.replicas[WorkerKey(fleet.ref, REGION)] = 7
    await rig.tick_after(5.0)
    assert rig.count(fleet) == 1


async def test_a_failed_read_holds_the_count_however_long_the_queue_was_idle(rig: Rig) -> None:
    fleet = rig.target("blind", minReplicas=0, scaleToZero=True, idleAfter="10s")
    await rig.place(fleet, replicas=4)
    rig.queues.backlog["blind"] = None
    for _ in range(30):
        await rig.tick_after(5.0)
    assert rig.count(fleet) == 4
    assert rig.reporter.changes[-1][1].reason == "missing-metrics"


async def test_the_policy_leaves_counts_alone_until_the_first_decision(rig: Rig) -> None:
    """A restarted operator's first reconcile pass must not reset what is running."""
    fleet = rig.target("restart")
    assert rig.autoscaler.desired(fleet, WorkerObservation(exists=True, replicas=6), None) is None


async def test_a_restarted_autoscaler_shrinks_nothing_for_one_window(rig: Rig) -> None:
    fleet = rig.target("restart")
    await rig.place(fleet, replicas=6)
    await rig.tick_after(0)
    assert rig.count(fleet) == 6
    await rig.tick_after(30.0)
    assert rig.count(fleet) == 6, "inside the 60 s window"
    await rig.tick_after(35.0)
    assert rig.count(fleet) == 1, "the window has passed"


async def test_idle_goes_to_zero_and_the_first_job_brings_one_back(rig: Rig) -> None:
    fleet = rig.target("nightly", minReplicas=0, scaleToZero=True, idleAfter="20s")
    await rig.place(fleet, replicas=2)
    for _ in range(5):
        await rig.tick_after(5.0)
    assert rig.count(fleet) == 0
    assert rig.reporter.changes[-1][1].reason == "idle"
    rig.queues.backlog["nightly"] = 1
    rig.queues.sequence["nightly"] = 1
    await rig.tick_after(5.0)
    assert rig.count(fleet) == 1


async def test_contention_shares_the_pool_and_posts_one_event_on_the_change_into_capped(rig: Rig) -> None:
    high = rig.target("checkout", capacity=6, priority=10)
    low = rig.target("batch", capacity=6)
    await rig.place(high)
    await rig.place(low)
    rig.queues.backlog.update(checkout=40, batch=400)
    await rig.tick_after(0)
    await rig.tick_after(15.0)
    assert (rig.count(high), rig.count(low)) == (4, 2)
    capped = rig.reporter.events("CapacityCapped")
    assert len(capped) == 1
    assert "RegionPool pool-eu allows 6 workers" in capped[0]
    for _ in range(4):
        await rig.tick_after(5.0)
    assert len(rig.reporter.events("CapacityCapped")) == 1, "not on every tick while capped"
    assert rig.autoscaler.fleet(low.ref, REGION).decision.reason.value == "capacity-capped"  # type: ignore[union-attr]


async def test_a_keda_pipeline_is_never_scaled_but_counts_against_capacity(rig: Rig) -> None:
    keda = rig.target("keda", capacity=5, engine="keda")
    builtin = rig.target("builtin", capacity=5)
    await rig.place(keda, replicas=3)
    await rig.place(builtin)
    rig.queues.backlog.update(keda=1000, builtin=1000)
    await rig.tick_after(0)
    await rig.tick_after(15.0)
    assert rig.count(keda) == 3
    assert rig.count(builtin) == 2
    assert rig.autoscaler.desired(keda, WorkerObservation(exists=True, replicas=3), None) is None


async def test_where_no_keda_runs_keda_pipelines_are_scaled_by_the_builtin_engine(rig: Rig) -> None:
    """The local stack: a file written for a KEDA cluster still follows its backlog on a laptop."""
    local = Autoscaler(SingleRuntime(rig.runtime), rig.queues, rig.reporter, clock=rig.clock, keda=False)
    keda = rig.target("keda-on-laptop", engine="keda")
    await rig.runtime.apply(keda, 1)
    local.desired(keda, WorkerObservation(exists=True, replicas=1), None)
    rig.queues.backlog["keda-on-laptop"] = 30
    await local.tick()
    assert rig.count(keda) == 3


async def test_a_forgotten_pipeline_is_no_longer_scaled(rig: Rig) -> None:
    fleet = rig.target("gone")
    await rig.place(fleet)
    rig.autoscaler.forget(fleet.ref, REGION)
    rig.queues.backlog["gone"] = 100
    await rig.tick_after(5.0)
    assert rig.count(fleet) == 1
    assert rig.autoscaler.fleet(fleet.ref, REGION) is None


async def test_a_lowered_maximum_applies_in_the_next_reconcile_pass(rig: Rig) -> None:
    fleet = rig.target("bounded")
    await rig.place(fleet)
    rig.queues.backlog["bounded"] = 1000
    await rig.tick_after(0)
    await rig.tick_after(15.0)
    assert rig.count(fleet) == 10
    smaller = rig.target("bounded", maxReplicas=3)
    decision = rig.autoscaler.desired(smaller, WorkerObservation(exists=True, replicas=10), None)
    assert decision is not None
    assert decision.replicas == 3


def test_the_autoscaler_and_its_maths_load_without_kopf_kubernetes_or_nats() -> None:
    modules = (
        "pixelmesh.operator.autoscaler",
        "pixelmesh.operator.autoscaling.decision",
        "pixelmesh.operator.autoscaling.measure",
        "pixelmesh.operator.autoscaling.policy",
        "pixelmesh.operator.autoscaling.pool",
        "pixelmesh.operator.builders.scaled_object",
        "pixelmesh.operator.builders.events",
    )
    probe = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in ('kopf', 'kubernetes', 'nats') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
