"""The reconciler's failover decisions against in-memory seams: weights leave a failed region at
once, and a drain that could not be opened is opened at the next probe, not the next pass."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from pixelmesh.api.messages import PipelineRef
from pixelmesh.api.resources import RegionPoolSpec
from pixelmesh.api.routing import RoutingEntry
from pixelmesh.operator.autoscaling.measure import WorkerTotals
from pixelmesh.operator.errors import RegionUnreachableError
from pixelmesh.operator.jetstream import PipelineStreamSettings, RegionBucketSettings
from pixelmesh.operator.reconcile import PipelineObject, Reconciler, SingleRuntime
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
        return None

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
    pools = {n: RegionPoolSpec.model_validate(spec) for n, spec in POOLS.items()}
    outcome = await reconciler.probe_pool(name, 1, POOLS[name], statuses.get(name, {}), pools)
    statuses[name] = outcome.status.to_wire()
    return str(outcome.status.phase)


@pytest.fixture
def jetstream() -> FakeJetStream:
    return FakeJetStream()


@pytest.fixture
async def reconciler(jetstream: FakeJetStream) -> Reconciler:
    reconciler = Reconciler(runtimes=SingleRuntime(FakeRuntime()), jetstream=jetstream)
    pools = {n: RegionPoolSpec.model_validate(spec) for n, spec in POOLS.items()}
    await reconciler.reconcile_pipeline(PIPELINE, pools)
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
