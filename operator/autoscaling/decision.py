"""The scaling decision for one pipeline in one region.

KEDA's JetStream scaler sizes a fleet as `ceil(lag / lagThreshold)`. That reacts to a queue only
after it has grown, and it cannot tell a fleet that keeps up with 10K jobs/s from one that is
falling behind on 100/s. Here the recommendation is the larger of two needs:

- backlog: `ceil((pending + ack_pending) / targetBacklogPerReplica)`, which drains what has piled up;
- arrival: `ceil(arrival_rate / (service_rate_per_replica * targetUtilization))`, which keeps up with
  what is arriving, using the service rate the workers actually measured.

Then HPA-like damping: scale up at once but by a bounded step per decision; scale down only to the
highest recommendation seen in the stabilisation window, so a dip does not shed replicas that the
next burst needs (no flapping). Idleness (nothing pending, nothing arriving) for `idleAfter` takes
a pipeline that allows it to zero; the first pending message brings back one replica (activation).

Missing measurements never shrink a fleet: without the backlog the decision holds the current count,
because scaling to zero on a failed metrics read would stop a busy pipeline.

Capacity is applied afterwards and across pipelines (`share_capacity`): a region's pool has a
maximum number of workers, and pipelines compete for it by priority, then fairly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum


class ScalingReason(StrEnum):
    """Why the desired count is what it is (status, metrics label, Events)."""

    BACKLOG = "backlog"
    ARRIVAL_RATE = "arrival-rate"
    CAPACITY_CAPPED = "capacity-capped"
    IDLE = "idle"
    MINIMUM = "minimum"
    MAXIMUM = "maximum"
    STABILISING = "stabilising"
    MISSING_METRICS = "missing-metrics"


@dataclass(frozen=True, slots=True)
class ScalingPolicy:
    """The knobs of one pipeline's autoscaling, from its spec."""

    min_replicas: int = 0
    max_replicas: int = 10
    target_backlog_per_replica: int = 100
    target_utilization: float = 0.8
    scale_down_window: float = 300.0
    """Seconds of recommendations a scale-down looks back over."""
    idle_after: float = 60.0
    """Seconds with nothing pending and nothing arriving before scaling to zero."""
    scale_to_zero: bool = True
    scale_up_pods: int = 4
    """A scale-up period may add at least this many replicas..."""
    scale_up_percent: float = 100.0
    """...or this percentage of the count the period began with, whichever is more (the HPA's defaults)."""
    scale_up_period: float = 15.0
    """Seconds over which the scale-up step is bounded: replicas still starting count as added."""

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError(
                f"need 0 <= minReplicas <= maxReplicas, got {self.min_replicas}, {self.max_replicas}"
            )
        if self.target_backlog_per_replica < 1:
            raise ValueError("targetBacklogPerReplica must be at least 1")
        if not 0.0 < self.target_utilization <= 1.0:
            raise ValueError("targetUtilization must be in (0, 1]")

    @property
    def floor(self) -> int:
        """The fewest replicas when idle: zero only if the pipeline allows it."""
        return self.min_replicas if self.scale_to_zero else max(self.min_replicas, 1)


@dataclass(frozen=True, slots=True)
class Measurements:
    """What was observed for one pipeline in one region. `None` means the read failed."""

    current_replicas: int
    backlog: int | None
    """Consumer pending + ack pending, read from the stream leader."""
    arrival_rate: float | None = None
    """Jobs per second arriving in the stream."""
    service_rate: float | None = None
    """Jobs per second one replica completes, measured by the workers."""


@dataclass(frozen=True, slots=True)
class ScalerMemory:
    """What a decision needs to remember until the next one."""

    recommendations: tuple[tuple[float, int], ...] = ()
    """(time, recommendation) pairs inside the stabilisation window."""
    idle_since: float | None = None
    period_start: float | None = None
    """When the current scale-up period began, and the replica count it began with."""
    period_base: int = 0


@dataclass(frozen=True, slots=True)
class Decision:
    """The desired replica count and why."""

    desired: int
    reason: ScalingReason
    recommendation: int
    """The unclamped, undamped need, for status and debugging."""
    memory: ScalerMemory = field(default_factory=ScalerMemory)


def recommend(policy: ScalingPolicy, m: Measurements) -> tuple[int, ScalingReason]:
    """The replicas needed for the backlog and the arrival rate, before damping and clamping."""
    assert m.backlog is not None
    by_backlog = math.ceil(m.backlog / policy.target_backlog_per_replica)
    by_arrival = 0
    if m.arrival_rate is not None and m.service_rate is not None and m.service_rate > 0:
        by_arrival = math.ceil(m.arrival_rate / (m.service_rate * policy.target_utilization))
    if by_arrival > by_backlog:
        return by_arrival, ScalingReason.ARRIVAL_RATE
    return by_backlog, ScalingReason.BACKLOG


def _is_idle(m: Measurements) -> bool:
    return m.backlog == 0 and not (m.arrival_rate or 0.0) > 0.0


def decide(policy: ScalingPolicy, m: Measurements, memory: ScalerMemory, now: float) -> Decision:
    """Desired replicas for one pipeline in one region at time `now` (seconds, any epoch)."""
    current = m.current_replicas
    if m.backlog is None:
        return Decision(current, ScalingReason.MISSING_METRICS, current, memory)

    need, reason = recommend(policy, m)
    idle_since = (memory.idle_since if memory.idle_since is not None else now) if _is_idle(m) else None
    idle_long_enough = idle_since is not None and now - idle_since >= policy.idle_after

    # Until idleness has lasted, a running fleet keeps one replica: short gaps between jobs are the
    # normal shape of traffic, and cold starts cost more than an idle pod.
    floor = policy.floor if idle_long_enough else max(policy.floor, min(current, 1))
    target = max(need, floor)
    if target > policy.max_replicas:
        target, reason = policy.max_replicas, ScalingReason.MAXIMUM
    elif idle_since is not None:
        reason = ScalingReason.IDLE
    elif need < floor:
        reason = ScalingReason.MINIMUM

    window_start = now - policy.scale_down_window
    history = (*((t, r) for t, r in memory.recommendations if t > window_start), (now, target))
    period_start, period_base = memory.period_start, memory.period_base
    if period_start is None or now - period_start >= policy.scale_up_period:
        period_start, period_base = now, current
    new_memory = ScalerMemory(history, idle_since, period_start, period_base)

    if target > current:
        step = max(policy.scale_up_pods, math.ceil(period_base * policy.scale_up_percent / 100.0))
        desired = max(current, min(target, period_base + step))
    elif target < current and not idle_long_enough:
        desired = min(current, max(r for _, r in history))
        if desired > target:
            reason = ScalingReason.STABILISING
    else:
        desired = target
    if desired > policy.max_replicas:
        # A lowered maxReplicas applies at once, whatever the window remembers.
        desired, reason = policy.max_replicas, ScalingReason.MAXIMUM
    return Decision(desired, reason, need, new_memory)


def resumed_memory(current: int, now: float) -> ScalerMemory:
    """The memory for a fleet met for the first time: a new pipeline, or any after an operator restart.

    The window is lost with the process that held it; taking the current count as just recommended
    means nothing shrinks for one window after a restart, while a scale-up still happens at once.
    """
    return ScalerMemory(recommendations=((now, current),))


@dataclass(frozen=True, slots=True)
class CapacityClaim:
    """One pipeline's wish for replicas in a pool."""

    pipeline: str
    desired: int
    minimum: int = 0
    priority: int = 0
    """Higher is served first."""


def share_capacity(capacity: int | None, claims: Sequence[CapacityClaim]) -> dict[str, int]:
    """Replicas granted to each pipeline in a pool of `capacity` workers (None: unlimited).

    Minimums are served first, by priority; then the rest by priority; pipelines of equal
    priority share what is left by water-filling (each gets an equal share, capped at its wish,
    and what a small wish leaves over goes to the others), so no pipeline starves another of equal
    rank. Deterministic: ties are broken by pipeline name.
    """
    if capacity is None:
        return {c.pipeline: c.desired for c in claims}
    granted = {c.pipeline: 0 for c in claims}
    left = capacity
    by_priority = sorted(claims, key=lambda c: (-c.priority, c.pipeline))
    for c in by_priority:
        give = min(c.minimum, c.desired, left)
        granted[c.pipeline] += give
        left -= give
    for priority in sorted({c.priority for c in claims}, reverse=True):
        tier = [c for c in by_priority if c.priority == priority]
        left = _water_fill(tier, granted, left)
    return granted


def _water_fill(tier: Sequence[CapacityClaim], granted: dict[str, int], left: int) -> int:
    hungry = [c for c in tier if granted[c.pipeline] < c.desired]
    while left > 0 and hungry:
        share = max(1, left // len(hungry))
        for c in hungry:
            give = min(share, c.desired - granted[c.pipeline], left)
            granted[c.pipeline] += give
            left -= give
            if left == 0:
                break
        hungry = [c for c in hungry if granted[c.pipeline] < c.desired]
    return left


def cap(decision: Decision, granted: int) -> Decision:
    """The decision limited to what the pool granted, saying so when it bit."""
    if decision.desired <= granted:
        return decision
    return replace(decision, desired=granted, reason=ScalingReason.CAPACITY_CAPPED)


def arrival_rate(samples: Sequence[tuple[float, int]], now: float, window: float = 30.0) -> float | None:
    """Jobs per second from (time, stream last sequence) samples over the last `window` seconds.

    A work-queue stream deletes acked messages, so its message count says nothing about arrivals;
    its last sequence number only ever grows by one per accepted message. None until two samples
    span some time.
    """
    recent = [s for s in samples if now - s[0] <= window]
    if len(recent) < 2:
        return None
    (t0, s0), (t1, s1) = recent[0], recent[-1]
    if t1 <= t0:
        return None
    return max(0, s1 - s0) / (t1 - t0)


def service_rate(completions: Mapping[str, tuple[float, float]]) -> float | None:
    """Jobs per second per busy replica, from each worker's (jobs completed, busy seconds).

    Busy time, not wall time: an idle replica's rate says nothing about how fast it works.
    """
    jobs = sum(done for done, _ in completions.values())
    busy = sum(seconds for _, seconds in completions.values())
    if busy <= 0 or jobs <= 0:
        return None
    return jobs / busy
