"""Effective region weights: where new jobs of a pipeline go, moved in guarded steps.

The spec says where traffic should go (`regions[].weight`); the routing table says where it goes
now. They differ while a change is rolled out, and whenever a region is not routable.

- Failover is immediate: a region that is not routable loses its share at once, shared out among
  the others in proportion to what they carry (no guard: a dead region cannot be worse).
- Everything else moves in steps of `stepPercent` percentage points every `interval`, like a
  canary. Before each new step the regions that gained traffic in the previous one are checked
  against the guards (error rate, p99 latency); a breach rolls back to the last weights that passed
  and leaves that target alone until the spec asks for a different one. Failback after a region
  recovers is such a shift, so traffic returns gradually.
- Fail static: when no region is routable (which is more often the prober's own partition than a
  world-wide outage) the weights stay as they are.

Weights are integer percentages summing to 100, so the gateway's weighted choice is exact and the
table is easy to read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from pixelmesh.api.resources import ImagePipelineSpec, ShiftStatus, duration_seconds

Weights = dict[str, int]


@dataclass(frozen=True, slots=True)
class ShiftPolicy:
    """`ImagePipeline.spec.trafficShift`."""

    step_percent: int = 10
    interval: float = 60.0
    max_error_rate: float = 0.05
    max_p99_seconds: float | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.step_percent <= 100:
            raise ValueError("stepPercent must be within 1-100")


def shift_policy(spec: ImagePipelineSpec) -> ShiftPolicy:
    """The pipeline's `trafficShift` as a policy."""
    shift = spec.traffic_shift
    return ShiftPolicy(
        step_percent=shift.step_percent,
        interval=duration_seconds(shift.interval),
        max_error_rate=shift.max_error_rate,
        max_p99_seconds=duration_seconds(shift.max_p99_latency) if shift.max_p99_latency else None,
    )


@dataclass(frozen=True, slots=True)
class GuardReading:
    """A region's figures over the last interval; `None` when not measured."""

    error_rate: float | None = None
    p99_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class TrafficPlan:
    """The effective weights and the state of the rollout, kept in the pipeline's status."""

    weights: Weights
    last_good: Weights
    target: Weights
    status: ShiftStatus = ShiftStatus.STEADY
    reason: str = "WeightsApplied"
    message: str = "Effective weights match the spec."
    last_step_at: float | None = None
    aborted_target: Weights | None = None
    generation: int = 0
    """Bumped on every change of `weights`, so readers of the routing table can tell versions apart."""
    events: tuple[str, ...] = field(default=(), compare=False)
    """What happened in this planning round, as sentences for Kubernetes Events."""


def normalise(weights: Mapping[str, int]) -> Weights:
    """Integer percentages summing to 100 in the same proportions (largest remainder); all 0 if none."""
    total = sum(max(0, w) for w in weights.values())
    if total == 0:
        return dict.fromkeys(weights, 0)
    exact = {r: max(0, w) * 100 / total for r, w in weights.items()}
    out = {r: int(v) for r, v in exact.items()}
    for r in sorted(exact, key=lambda r: (-(exact[r] - out[r]), r))[: 100 - sum(out.values())]:
        out[r] += 1
    return out


def _step_towards(current: Weights, target: Weights, step: int) -> Weights:
    """Move at most `step` points from the regions above target to the regions below it."""
    gains = {r: target[r] - current.get(r, 0) for r in target if target[r] > current.get(r, 0)}
    losses = {r: current.get(r, 0) - target[r] for r in target if target[r] < current.get(r, 0)}
    moved = min(step, sum(gains.values()))
    out = {r: current.get(r, 0) for r in target}
    for r, share in _apportion(gains, moved).items():
        out[r] += share
    for r, share in _apportion(losses, moved).items():
        out[r] -= share
    return out


def _apportion(demand: Mapping[str, int], amount: int) -> Weights:
    """Split `amount` across `demand` in proportion, never beyond a region's demand."""
    total = sum(demand.values())
    if total == 0 or amount == 0:
        return dict.fromkeys(demand, 0)
    exact = {r: d * amount / total for r, d in demand.items()}
    out = {r: min(demand[r], int(v)) for r, v in exact.items()}
    for r in sorted(exact, key=lambda r: (-(exact[r] - int(exact[r])), r)):
        if sum(out.values()) >= amount:
            break
        if out[r] < demand[r]:
            out[r] += 1
    return out


def _breach(region: str, reading: GuardReading, policy: ShiftPolicy) -> str | None:
    if reading.error_rate is not None and reading.error_rate > policy.max_error_rate:
        return f"region {region} failed {reading.error_rate:.1%} of jobs (limit {policy.max_error_rate:.1%})"
    if (
        policy.max_p99_seconds is not None
        and reading.p99_seconds is not None
        and reading.p99_seconds > policy.max_p99_seconds
    ):
        return (
            f"region {region} p99 latency is {reading.p99_seconds:.2f}s (limit {policy.max_p99_seconds:.2f}s)"
        )
    return None


def _fail_over(plan: TrafficPlan, routable: Mapping[str, bool], target: Weights) -> TrafficPlan:
    lost = sorted(r for r, w in plan.weights.items() if w > 0 and not routable.get(r, False))
    survivors = {r: (w if routable.get(r, False) else 0) for r, w in plan.weights.items()}
    weights = normalise(survivors) if sum(survivors.values()) else dict(target)
    last_good = {r: (w if routable.get(r, False) else 0) for r, w in plan.last_good.items()}
    message = f"Region(s) {', '.join(lost)} not routable: their traffic moved to the others at once."
    return replace(
        plan,
        weights=weights,
        last_good=normalise(last_good) if sum(last_good.values()) else weights,
        target=target,
        status=ShiftStatus.FAILED_OVER,
        reason="RegionFailed",
        message=message,
        generation=plan.generation + 1,
        events=(message,),
    )


def plan_weights(
    spec_weights: Mapping[str, int],
    routable: Mapping[str, bool],
    *,
    guards: Mapping[str, GuardReading],
    policy: ShiftPolicy,
    previous: TrafficPlan | None,
    now: float,
) -> TrafficPlan:
    """The next traffic plan for one pipeline."""
    target = normalise({r: (w if routable.get(r, False) else 0) for r, w in spec_weights.items()})
    if sum(target.values()) == 0:
        if previous is None:
            weights = normalise(spec_weights)
            return TrafficPlan(
                weights,
                weights,
                weights,
                ShiftStatus.NO_ROUTABLE_REGION,
                "NoRoutableRegion",
                "No region is routable; the spec's weights are used until one is.",
                generation=1,
            )
        message = "No region is routable; weights are held as they are (fail static)."
        return replace(
            previous,
            status=ShiftStatus.NO_ROUTABLE_REGION,
            reason="NoRoutableRegion",
            message=message,
            events=(),
        )
    if previous is None:
        return TrafficPlan(dict(target), dict(target), dict(target), last_step_at=now, generation=1)
    if not any(previous.weights.get(r, 0) for r in target):
        # Nothing was routed to any of these regions yet (a pipeline whose pools appeared late):
        # there is no traffic to move gradually, so the target applies at once.
        return TrafficPlan(
            dict(target), dict(target), dict(target), last_step_at=now, generation=previous.generation + 1
        )

    plan = replace(previous, weights={r: previous.weights.get(r, 0) for r in target}, events=())
    if any(w > 0 and not routable.get(r, False) for r, w in plan.weights.items()):
        return _fail_over(plan, routable, target)
    if plan.aborted_target == target:
        return plan

    gained = [r for r in target if plan.weights[r] > plan.last_good.get(r, 0)]
    for region in gained:
        breach = _breach(region, guards.get(region, GuardReading()), policy)
        if breach is not None:
            message = f"Traffic shift rolled back to the last good weights: {breach}."
            return replace(
                plan,
                weights=dict(plan.last_good),
                target=target,
                status=ShiftStatus.ROLLED_BACK,
                reason="GuardBreached",
                message=message,
                aborted_target=target,
                generation=plan.generation + 1,
                events=(message,),
            )

    # A new target starts moving at once; later steps wait for the previous one to be watched.
    soaked = plan.last_step_at is None or now - plan.last_step_at >= policy.interval or plan.target != target
    if plan.weights == target:
        if plan.last_good != target and not soaked:
            # The last step is watched for a whole interval like every other before it counts as good.
            return replace(plan, target=target, status=ShiftStatus.SHIFTING)
        return replace(
            plan,
            target=target,
            last_good=dict(target),
            status=ShiftStatus.STEADY,
            reason="WeightsApplied",
            message="Effective weights match the spec.",
            aborted_target=None,
        )
    if not soaked:
        return replace(plan, target=target, status=ShiftStatus.SHIFTING)
    weights = _step_towards(plan.weights, target, policy.step_percent)
    return replace(
        plan,
        weights=weights,
        last_good=dict(plan.weights),
        target=target,
        status=ShiftStatus.SHIFTING,
        reason="Shifting",
        message=f"Shifting {policy.step_percent} points every {policy.interval:.0f}s towards the spec.",
        last_step_at=now,
        aborted_target=None,
        generation=plan.generation + 1,
        events=(f"Effective weights now {_describe(weights)}.",),
    )


def _describe(weights: Mapping[str, int]) -> str:
    return ", ".join(f"{r}={w}%" for r, w in sorted(weights.items()))
