"""The reconciler's routing decisions against in-memory seams: weights leave a failed region at
once, a drain that could not be opened is opened at the next probe (not the next pass), a traffic
shift rolls back when its target's p99 latency breaches the guard, and a failback is not judged by
what the region did while it was away."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from pixelmesh.api.latency import BUCKETS, bucket_of
from pixelmesh.api.messages import PipelineRef
from pixelmesh.api.resources import RegionPoolSpec, ShiftStatus
from pixelmesh.api.routing import RoutingEntry
from pixelmesh.operator.autoscaling.measure import WorkerTotals
from pixelmesh.operator.errors import RegionUnreachableError
from pixelmesh.operator.jetstream import PipelineStreamSettings, RegionBucketSettings
from pixelmesh.operator.reconcile import PipelineObject, PipelineOutcome, Reconciler, SingleRuntime
from pixelmesh.operator.runtime import Applied, PlacedWorkers, RuntimeAction, WorkerObservation
from pixelmesh.operator.status import ProbeResult
from pixelmesh.operator.target import GeoPlacement, RegionPlacement, WorkerTarget

REF = PipelineRef(namespace="media", name="thumbs")
RUNNING = WorkerObservation(exists=True, replicas=1, ready=1, available=1, updated=1, rolled_out=True)


def pool(region: str, backup: str) -> dict[str, Any]:
    return {
        "region": region,
        "nats": {"urls": [f"nats://{region}.example:4222"]},
        "failover": {"backupRegion": backup, "failureThreshold": 1, "recoveryThreshold": 1},
    }


POOLS = {"r1": pool("r1", "r2"), "r2": pool("r2", "r1")}
POOL_SPECS = {name: RegionPoolSpec.model_validate(spec) for name, spec in POOLS.items()}
PIPELINE = PipelineObject(
    namespace=REF.namespace,
    name=REF.name,
    generation=1,
    spec={
        "variants": [{"name": "thumb", "steps": [{"thumbnail": {"width": 64}}], "format": {"type": "jpeg"}}],
        "regions": [{"pool": "r1", "weight": 50}, {"pool": "r2", "weight": 50}],
    },
)


@dataclass
class FakeJetStream:
    """Every region answers, except those in `down`; `drain_refusals` opens fail first."""

    down: set[str] = field(default_factory=set)
    drain_refusals: int = 0
    routing: list[RoutingEntry] = field(default_factory=list)
    open_drains: set[str] = field(default_factory=set)
    totals: dict[str, tuple[WorkerTotals, ...]] = field(default_factory=dict)
    """The workers' running totals by region, as the worker-stats bucket would hold them."""

    async def ensure_region(
        self, placement: RegionPlacement, settings: RegionBucketSettings
    ) -> dict[str, str]:
        return {}

    async def ensure_pipeline(
        self, placement: RegionPlacement, ref: PipelineRef, settings: PipelineStreamSettings
    ) -> dict[str, str]:
        return {}

    async def ensure_job_mirror(
        self, backup: RegionPlacement, ref: PipelineRef, origin: str, settings: PipelineStreamSettings
    ) -> dict[str, str]:
        return {}

    async def backlog(self, placement: RegionPlacement, ref: PipelineRef) -> int | None:
        return 0

    async def delete_pipeline(self, placement: RegionPlacement, ref: PipelineRef) -> None:
        return None

    async def probe(self, placement: RegionPlacement, timeout: float) -> ProbeResult:  # noqa: ASYNC109
        if placement.region in self.down:
            return ProbeResult(nats_reachable=False, jetstream_available=False, message="connection refused")
        return ProbeResult(nats_reachable=True, jetstream_available=True, round_trip_seconds=0.001)

    async def publish_routing(self, home: RegionPlacement, entry: RoutingEntry) -> None:
        self.routing.append(entry)

    async def worker_totals(
        self, placement: RegionPlacement, ref: PipelineRef
    ) -> tuple[WorkerTotals, ...] | None:
        return self.totals.get(placement.region)

    async def ensure_geo_sources(self, home: RegionPlacement, geo: GeoPlacement) -> dict[str, str]:
        return {}

    async def open_drain(
        self, backup: RegionPlacement, ref: PipelineRef, origin: str, settings: PipelineStreamSettings
    ) -> bool:
        if self.drain_refusals > 0:
            self.drain_refusals -= 1
            raise RegionUnreachableError(
                f"JetStream of region {backup.region} did not answer: TimeoutError()"
            )
        opened = origin not in self.open_drains
        self.open_drains.add(origin)
        return opened

    async def close_drain(self, backup: RegionPlacement, ref: PipelineRef, origin: str) -> bool:
        closed = origin in self.open_drains
        self.open_drains.discard(origin)
        return closed

    async def mirror_lag(self, backup: RegionPlacement, ref: PipelineRef, origin: str) -> int | None:
        return 0


@dataclass
class FakeRuntime:
    async def apply(self, target: WorkerTarget, replicas: int) -> Applied:
        return Applied(RUNNING)

    async def scale(self, target: WorkerTarget, replicas: int) -> RuntimeAction | None:
        return None

    async def observe(self, target: WorkerTarget) -> WorkerObservation:
        return RUNNING

    async def placed(self, ref: PipelineRef) -> list[PlacedWorkers]:
        return []

    async def remove(self, ref: PipelineRef, region: str) -> list[RuntimeAction]:
        return []


def last_weights(entry: RoutingEntry) -> dict[str, int]:
    return {w.region: w.weight for w in entry.regions}


async def probe(reconciler: Reconciler, name: str, statuses: dict[str, Mapping[str, Any]]) -> str:
    outcome = await reconciler.probe_pool(name, 1, POOLS[name], statuses.get(name, {}), POOL_SPECS)
    statuses[name] = outcome.status.to_wire()
    return str(outcome.status.phase)


@pytest.fixture
def jetstream() -> FakeJetStream:
    return FakeJetStream()


@pytest.fixture
async def reconciler(jetstream: FakeJetStream) -> Reconciler:
    reconciler = Reconciler(runtimes=SingleRuntime(FakeRuntime()), jetstream=jetstream)
    await reconciler.reconcile_pipeline(PIPELINE, POOL_SPECS)
    return reconciler


async def test_a_failed_region_gets_weight_0_and_its_backup_drains_it_in_the_same_entry(
    reconciler: Reconciler, jetstream: FakeJetStream
) -> None:
    statuses: dict[str, Mapping[str, Any]] = {}
    assert last_weights(jetstream.routing[-1]) == {"r1": 50, "r2": 50}
    jetstream.down.add("r1")

    assert await probe(reconciler, "r1", statuses) == "Failed"

    entry = jetstream.routing[-1]
    assert last_weights(entry) == {"r1": 0, "r2": 100}
    assert [(d.origin, d.backup) for d in entry.drains] == [("r1", "r2")]


async def test_a_drain_that_could_not_open_opens_at_the_next_probe_of_any_region(
    reconciler: Reconciler, jetstream: FakeJetStream
) -> None:
    statuses: dict[str, Mapping[str, Any]] = {}
    jetstream.down.add("r1")
    jetstream.drain_refusals = 1

    assert await probe(reconciler, "r1", statuses) == "Failed"
    weights_first = jetstream.routing[-1]
    assert last_weights(weights_first) == {"r1": 0, "r2": 100}, "traffic leaves the dead region at once"
    assert weights_first.drains == []
    assert jetstream.open_drains == set()

    assert await probe(reconciler, "r2", statuses) == "Healthy"

    assert jetstream.open_drains == {"r1"}
    entry = jetstream.routing[-1]
    assert last_weights(entry) == {"r1": 0, "r2": 100}
    assert [(d.origin, d.backup) for d in entry.drains] == [("r1", "r2")]
    published = len(jetstream.routing)
    assert await probe(reconciler, "r2", statuses) == "Healthy"
    assert len(jetstream.routing) == published, "a settled drain is not decided again at every probe"


async def test_the_drain_closes_when_the_region_is_back(
    reconciler: Reconciler, jetstream: FakeJetStream
) -> None:
    statuses: dict[str, Mapping[str, Any]] = {}
    jetstream.down.add("r1")
    assert await probe(reconciler, "r1", statuses) == "Failed"
    assert jetstream.open_drains == {"r1"}

    jetstream.down.clear()
    assert await probe(reconciler, "r1", statuses) == "Healthy"

    assert jetstream.open_drains == set()
    assert jetstream.routing[-1].drains == []


def shifting_pipeline(generation: int, weights: dict[str, int]) -> PipelineObject:
    spec = dict(PIPELINE.spec)
    spec["regions"] = [{"pool": pool, "weight": weight} for pool, weight in weights.items()]
    spec["trafficShift"] = {"stepPercent": 20, "interval": "100ms", "maxP99Latency": "2s"}
    return replace(PIPELINE, generation=generation, spec=spec)


def served(count: int, latency_seconds: float, before: WorkerTotals | None = None) -> WorkerTotals:
    counts = list(before.latency_counts) if before else [0] * BUCKETS
    counts[bucket_of(latency_seconds)] += count
    return WorkerTotals("w-1", (before.served if before else 0) + count, 1.0, 0, tuple(counts))


async def first_step_toward_r2(jetstream: FakeJetStream) -> Callable[[], Awaitable[PipelineOutcome]]:
    """A shift from r1 to r2 that took its first step; the next pass, once the step's interval is up."""
    reconciler = Reconciler(runtimes=SingleRuntime(FakeRuntime()), jetstream=jetstream)
    jetstream.totals["r2"] = (served(10, 0.2),)
    await reconciler.reconcile_pipeline(shifting_pipeline(1, {"r1": 100, "r2": 0}), POOL_SPECS)
    assert last_weights(jetstream.routing[-1]) == {"r1": 100, "r2": 0}
    moved = shifting_pipeline(2, {"r1": 0, "r2": 100})
    await asyncio.sleep(0.15)
    await reconciler.reconcile_pipeline(moved, POOL_SPECS)
    assert last_weights(jetstream.routing[-1]) == {"r1": 80, "r2": 20}, "the first step"

    async def next_pass() -> PipelineOutcome:
        await asyncio.sleep(0.15)
        return await reconciler.reconcile_pipeline(moved, POOL_SPECS)

    return next_pass


async def test_a_shift_whose_target_breaches_the_p99_guard_rolls_back(jetstream: FakeJetStream) -> None:
    next_pass = await first_step_toward_r2(jetstream)
    # r2's new jobs wait: 2 of 100 take 5 s, so its p99 is 5 s against a 2 s guard.
    jetstream.totals["r2"] = (served(2, 5.0, served(98, 0.2, jetstream.totals["r2"][0])),)
    outcome = await next_pass()

    assert last_weights(jetstream.routing[-1]) == {"r1": 100, "r2": 0}
    breach = [e for e in outcome.events if e.reason == "GuardBreached"]
    assert breach, outcome.events
    assert "p99 latency is 5.00s (limit 2.00s)" in breach[0].message
    traffic = outcome.status.traffic
    assert traffic is not None
    assert traffic.state is ShiftStatus.ROLLED_BACK
    assert traffic.reason == "GuardBreached"
    assert "p99 latency is 5.00s" in traffic.message
    assert outcome.patch["traffic"]["state"] == "RolledBack", "the status written says so"


async def test_a_shift_whose_target_keeps_its_p99_goes_on(jetstream: FakeJetStream) -> None:
    next_pass = await first_step_toward_r2(jetstream)
    # 1 slow job of 100 is the 1 % the p99 leaves out.
    jetstream.totals["r2"] = (served(1, 5.0, served(99, 0.2, jetstream.totals["r2"][0])),)
    await next_pass()

    assert last_weights(jetstream.routing[-1]) == {"r1": 60, "r2": 40}, "the second step"


async def test_a_failback_is_not_judged_by_what_the_region_did_while_it_was_away(
    jetstream: FakeJetStream,
) -> None:
    reconciler = Reconciler(runtimes=SingleRuntime(FakeRuntime()), jetstream=jetstream)
    failback = replace(
        PIPELINE, spec={**PIPELINE.spec, "trafficShift": {"stepPercent": 50, "interval": "100ms"}}
    )
    jetstream.totals["r2"] = (served(10, 0.2),)
    await reconciler.reconcile_pipeline(failback, POOL_SPECS)
    statuses: dict[str, Mapping[str, Any]] = {}
    jetstream.down.add("r2")
    assert await probe(reconciler, "r2", statuses) == "Failed"
    assert last_weights(jetstream.routing[-1]) == {"r1": 100, "r2": 0}

    # Cut off, r2's workers failed every job they took; their totals say so once r2 is back.
    away = served(50, 0.2, jetstream.totals["r2"][0])
    jetstream.totals["r2"] = (replace(away, failed=50),)
    jetstream.down.clear()
    assert await probe(reconciler, "r2", statuses) == "Healthy"
    assert last_weights(jetstream.routing[-1]) == {"r1": 50, "r2": 50}, "failback's one step"
    await asyncio.sleep(0.15)
    outcome = await reconciler.reconcile_pipeline(failback, POOL_SPECS)

    assert not [e for e in outcome.events if e.reason == "GuardBreached"], outcome.events
    assert last_weights(jetstream.routing[-1]) == {"r1": 50, "r2": 50}
    traffic = outcome.status.traffic
    assert traffic is not None
    assert traffic.state is ShiftStatus.STEADY
