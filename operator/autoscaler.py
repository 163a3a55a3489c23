"""The built-in autoscaler: a loop that measures, decides and scales each pipeline in each region.

Every pipeline x region the reconciler places is a fleet here (the reconciler registers it through
the replica seam: this class is its `ReplicaPolicy`). On each pipeline's `autoscaling.interval`
(else the operator's `--autoscaler-interval-seconds`, 5 s) a tick:

1. observes the fleet's current count through its runtime and reads the queue through
   `QueueReader` (consumer pending + ack pending from the consumer's leader, the stream's last
   sequence, the workers' reports): I/O behind ports, nothing else here touches NATS or Kubernetes;
2. turns the reading into measurements (`autoscaling.measure`, pure) and decides (`decide`, pure);
3. shares each region's capacity among the fleets placed on it (`autoscaling.pool`, pure) and
   scales through the runtime: a Deployment's `spec.replicas` (this is its only writer: a hand
   edit is put back on the next tick) or the number of local worker processes;
4. publishes the decision: metrics, the pipeline's status per region (desired replicas and the
   reason) through `ScalingReporter`, and an Event when a decision becomes capped by capacity
   (on the change into capped, not on every tick capped).

The reconciler's own passes ask the same policy, which answers with the last decision, so the two
never fight; before a fleet's first decision the answer is "leave it" (None), so a restarted
operator does not reset counts while it has not measured anything yet.

Pipelines under `autoscaling.engine: keda` are never scaled here; their current replicas still
count against their region's capacity.

Caveat, restarts: the memory (stabilisation window, idle clock, rates) lives in this process. A
restarted operator treats each fleet's current count as just recommended, so nothing shrinks for one
window and the idle clock starts again; scale-up stays immediate. Until two reads span some time
only the backlog decides (no rates yet).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from pixelmesh.api.messages import PipelineRef
from pixelmesh.api.resources import ScalingEngine
from pixelmesh.cancellation import resume_cancellation
from pixelmesh.operator import metrics
from pixelmesh.operator.autoscaling.decision import (
    Decision,
    ScalerMemory,
    ScalingReason,
    decide,
    resumed_memory,
)
from pixelmesh.operator.autoscaling.measure import QueueReading, RateMemory, measure
from pixelmesh.operator.autoscaling.policy import (
    DEFAULT_INTERVAL,
    MIN_INTERVAL,
    floor_replicas,
    interval_seconds,
    least_replicas,
    policy_from_spec,
    rate_window,
)
from pixelmesh.operator.autoscaling.pool import PoolMember, direction, share_pool
from pixelmesh.operator.reconcile import EventNote, RuntimeProvider
from pixelmesh.operator.runtime import WorkerObservation
from pixelmesh.operator.scaling import ScaleDecision
from pixelmesh.operator.target import RegionPlacement, WorkerKey, WorkerTarget

logger = logging.getLogger(__name__)

CAPACITY_CAPPED_EVENT = "CapacityCapped"


class QueueReader(Protocol):
    """Reads a pipeline's queue and workers in one region (`clients.nats.NatsJetStream`)."""

    async def read_queue(self, placement: RegionPlacement, ref: PipelineRef) -> QueueReading: ...


@dataclass(frozen=True, slots=True)
class ScalingChange:
    """A fleet's new desired count or reason, and the Events worth posting about it."""

    desired: int
    reason: str
    events: tuple[EventNote, ...] = ()


class ScalingReporter(Protocol):
    """Puts a decision where people look: the pipeline's status and its Events."""

    async def report(self, target: WorkerTarget, change: ScalingChange) -> bool:
        """Post the Events; record the change in the status. False when the status has no entry for
        the region yet (the reconciler's first pass is still to write it): reported again next tick."""
        ...


@dataclass
class Fleet:
    """One pipeline's workers in one region, as the autoscaler follows them."""

    target: WorkerTarget
    next_due: float = 0.0
    current: int = 0
    """The count the runtime had at the last read."""
    memory: ScalerMemory | None = None
    """None until the first decision (then seeded with the current count)."""
    rates: RateMemory = field(default_factory=RateMemory)
    proposal: Decision | None = None
    """The last decision before capacity."""
    decision: Decision | None = None
    """The last decision applied."""
    reported: tuple[int, str] | None = None
    builtin: bool = True
    """The operator sets this fleet's count (False: KEDA does)."""


class Autoscaler:
    """Scales every registered fleet; also the reconciler's `ReplicaPolicy`."""

    def __init__(
        self,
        runtimes: RuntimeProvider,
        reader: QueueReader,
        reporter: ScalingReporter | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        interval: float = DEFAULT_INTERVAL,
        keda: bool = True,
    ) -> None:
        self._runtimes = runtimes
        self._reader = reader
        self.reporter = reporter
        self._clock = clock
        self.interval = max(MIN_INTERVAL, interval)
        """Seconds between decisions for pipelines that set no `autoscaling.interval`; the loop
        sleeps at most this long (it wakes early when a fleet is registered)."""
        self._keda = keda
        """KEDA can run here; without it (the local stack) `engine: keda` pipelines are scaled here too."""
        self._fleets: dict[WorkerKey, Fleet] = {}
        self._wake = asyncio.Event()

    # --- the replica seam -------------------------------------------------------------------------

    def initial(self, target: WorkerTarget) -> int:
        fleet = self._fleets.get(WorkerKey(target.ref, target.region))
        if fleet is not None and fleet.decision is not None and fleet.builtin:
            return self._within_spec(target, fleet.decision.desired)
        return floor_replicas(target.spec.autoscaling)

    def desired(
        self, target: WorkerTarget, observed: WorkerObservation, backlog: int | None
    ) -> ScaleDecision | None:
        fleet = self.register(target)
        if not fleet.builtin or fleet.decision is None:
            return None
        return ScaleDecision(self._within_spec(target, fleet.decision.desired), fleet.decision.reason.value)

    def forget(self, ref: PipelineRef, region: str | None = None) -> None:
        for key in [k for k in self._fleets if k.ref == ref and region in (None, k.region)]:
            del self._fleets[key]
            metrics.forget_autoscaled(ref.namespace, ref.name, key.region)

    @staticmethod
    def _within_spec(target: WorkerTarget, replicas: int) -> int:
        """The last decision within the spec's bounds: an edited spec applies before the next tick."""
        autoscaling = target.spec.autoscaling
        return max(least_replicas(autoscaling), min(replicas, autoscaling.max_replicas))

    # --- following fleets ---------------------------------------------------------------------------

    def register(self, target: WorkerTarget) -> Fleet:
        """Follow `target` (or update what is followed); a new fleet is decided on the next tick."""
        key = WorkerKey(target.ref, target.region)
        fleet = self._fleets.get(key)
        if fleet is None:
            fleet = self._fleets[key] = Fleet(target)
            self._wake.set()
        fleet.target = target
        fleet.builtin = not self._keda or target.spec.autoscaling.engine is ScalingEngine.BUILTIN
        return fleet

    def fleet(self, ref: PipelineRef, region: str) -> Fleet | None:
        return self._fleets.get(WorkerKey(ref, region))

    async def run(self) -> None:
        """Tick until cancelled; one failed tick is logged and the next one tries again."""
        while True:
            try:
                await self.tick()
            except Exception:
                logger.exception("An autoscaler tick failed; the next one retries.")
            resume_cancellation()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._sleep())

    def _sleep(self) -> float:
        if not self._fleets:
            return self.interval
        until = min(f.next_due for f in self._fleets.values()) - self._clock()
        return min(self.interval, max(MIN_INTERVAL, until))

    async def tick(self) -> dict[WorkerKey, Decision]:
        """Decide for every fleet that is due and apply; the decisions applied, by fleet."""
        now = self._clock()
        due = {key: f for key, f in self._fleets.items() if f.next_due <= now}
        if not due:
            return {}
        await asyncio.gather(*(self._propose(fleet, now) for fleet in due.values()))
        applied: dict[WorkerKey, Decision] = {}
        for region in sorted({key.region for key in due}):
            applied |= await self._apply_region(region, due)
        return applied

    async def _propose(self, fleet: Fleet, now: float) -> None:
        """Measure one fleet and decide before capacity (`fleet.proposal`; None: leave it)."""
        target = fleet.target
        autoscaling = target.spec.autoscaling
        interval = interval_seconds(autoscaling, self.interval)
        fleet.next_due = now + interval
        try:
            observed = await self._runtimes.for_region(target.placement).observe(target)
        except Exception:  # the runtime's failure holds the count; the reconciler reports it
            logger.exception(
                "Observing the workers of ImagePipeline %s in region %s failed.", target.ref, target.region
            )
            fleet.proposal = None
            return
        if not observed.exists:
            fleet.proposal = None  # created by the next reconcile pass, with `initial`
            return
        fleet.current = observed.replicas or 0
        if not fleet.builtin:
            fleet.proposal = None
            return
        try:
            reading = await self._reader.read_queue(target.placement, target.ref)
        except Exception:  # a reader should answer None fields, but a missing read must only hold
            logger.exception(
                "Reading the queue of ImagePipeline %s in region %s failed.", target.ref, target.region
            )
            reading = QueueReading(backlog=None)
        measurements, fleet.rates = measure(fleet.rates, reading, fleet.current, now, rate_window(interval))
        memory = fleet.memory if fleet.memory is not None else resumed_memory(fleet.current, now)
        fleet.proposal = decide(policy_from_spec(autoscaling), measurements, memory, now)
        fleet.memory = fleet.proposal.memory
        metrics.record_rates(
            target.ref.namespace,
            target.ref.name,
            target.region,
            arrival_rate=measurements.arrival_rate,
            service_rate=measurements.service_rate,
        )

    async def _apply_region(self, region: str, due: dict[WorkerKey, Fleet]) -> dict[WorkerKey, Decision]:
        members = {key: f for key, f in self._fleets.items() if key.region == region}
        capacity = next(
            (f.target.placement.capacity for key, f in members.items() if key in due),
            None,
        )
        shares = share_pool(
            capacity,
            [
                PoolMember(
                    key=str(key),
                    current=f.current,
                    decision=f.proposal if f.builtin else None,
                    minimum=least_replicas(f.target.spec.autoscaling),
                    priority=f.target.spec.autoscaling.priority,
                )
                for key, f in members.items()
            ],
        )
        applied: dict[WorkerKey, Decision] = {}
        for key, fleet in members.items():
            decision = shares.get(str(key))
            if decision is None:
                continue
            before = fleet.decision
            moved = before is None or before.desired != decision.desired
            if key in due or moved:
                await self._apply(fleet, decision, counted=key in due, capacity=capacity)
                applied[key] = decision
        return applied

    async def _apply(self, fleet: Fleet, decision: Decision, *, counted: bool, capacity: int | None) -> None:
        target = fleet.target
        before, fleet.decision = fleet.decision, decision
        events: list[EventNote] = []
        moved = direction(fleet.current, decision.desired)
        try:
            action = None
            if decision.desired != fleet.current:  # the count was read moments ago
                action = await self._runtimes.for_region(target.placement).scale(target, decision.desired)
                fleet.current = decision.desired
        except Exception:  # reported by the reconciler's next pass; the decision stands
            logger.exception(
                "Scaling the workers of ImagePipeline %s in region %s to %d failed.",
                target.ref,
                target.region,
                decision.desired,
            )
            action = None
        if action is not None:
            events.append(
                EventNote("Normal", "Scaled", f"{action.describe()[:-1]}: {decision.reason.value}.")
            )
            logger.info(
                "Autoscaled ImagePipeline %s in region %s %s to %d workers (%s; %d needed).",
                target.ref,
                target.region,
                moved.value,
                decision.desired,
                decision.reason.value,
                decision.recommendation,
            )
        capped = decision.reason is ScalingReason.CAPACITY_CAPPED
        if capped and (before is None or before.reason is not ScalingReason.CAPACITY_CAPPED):
            events.append(
                EventNote("Warning", CAPACITY_CAPPED_EVENT, _capped_message(fleet, decision, capacity))
            )
        metrics.record_decision(
            target.ref.namespace,
            target.ref.name,
            target.region,
            desired=decision.desired,
            direction=moved.value,
            reason=decision.reason.value,
            counted=counted,
        )
        summary = (decision.desired, decision.reason.value)
        if self.reporter is not None and (summary != fleet.reported or events):
            try:
                if await self.reporter.report(target, ScalingChange(*summary, events=tuple(events))):
                    fleet.reported = summary
            except Exception:
                logger.exception(
                    "Reporting the scaling of ImagePipeline %s in region %s failed.",
                    target.ref,
                    target.region,
                )


def _capped_message(fleet: Fleet, decision: Decision, capacity: int | None) -> str:
    target = fleet.target
    pool = f"RegionPool {target.placement.pool}" if target.placement.pool else "The region"
    wanted = fleet.proposal.desired if fleet.proposal is not None else decision.recommendation
    return (
        f"Region {target.region}: {wanted} workers wanted, {decision.desired} granted; {pool} allows "
        f"{capacity} workers across its pipelines (capacity.maxWorkers)."
    )
