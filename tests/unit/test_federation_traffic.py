"""Effective weights: immediate failover, stepped and guarded shifts, rollback, fail static."""

from __future__ import annotations

import itertools
import random

import pytest

from pixelmesh.api.resources import ShiftStatus
from pixelmesh.operator.federation.traffic import (
    GuardReading,
    ShiftPolicy,
    TrafficPlan,
    normalise,
    plan_weights,
)

POLICY = ShiftPolicy(step_percent=20, interval=60.0, max_error_rate=0.05, max_p99_seconds=2.0)
ALL_UP = {"eu": True, "us": True, "ap": True}


@pytest.mark.parametrize(
    ("weights", "expect"),
    [
        ({"a": 1, "b": 1}, {"a": 50, "b": 50}),
        ({"a": 1, "b": 1, "c": 1}, {"a": 34, "b": 33, "c": 33}),
        ({"a": 3, "b": 1}, {"a": 75, "b": 25}),
        ({"a": 0, "b": 0}, {"a": 0, "b": 0}),
        ({"a": 5, "b": 0}, {"a": 100, "b": 0}),
    ],
)
def test_normalise_sums_to_100(weights: dict[str, int], expect: dict[str, int]) -> None:
    assert normalise(weights) == expect


def _plan(
    spec: dict[str, int], prev: TrafficPlan | None, now: float, routable=ALL_UP, guards=None
) -> TrafficPlan:
    return plan_weights(spec, routable, guards=guards or {}, policy=POLICY, previous=prev, now=now)


def test_first_plan_applies_the_spec_at_once() -> None:
    plan = _plan({"eu": 1, "us": 1}, None, 0.0)
    assert plan.weights == {"eu": 50, "us": 50}
    assert plan.status is ShiftStatus.STEADY


def test_a_change_moves_in_steps_one_interval_apart() -> None:
    plan = _plan({"eu": 100, "us": 0}, None, 0.0)
    seen = []
    for now in range(0, 400, 30):
        plan = _plan({"eu": 0, "us": 100}, plan, float(now) + 1)
        seen.append(plan.weights["us"])
    assert seen[:4] == [20, 20, 40, 40]
    assert max(b - a for a, b in itertools.pairwise(seen)) <= 20
    assert plan.weights == {"eu": 0, "us": 100}
    assert plan.status is ShiftStatus.STEADY


def test_failover_is_immediate_and_proportional() -> None:
    plan = _plan({"eu": 2, "us": 1, "ap": 1}, None, 0.0)
    plan = _plan({"eu": 2, "us": 1, "ap": 1}, plan, 5.0, routable={"eu": False, "us": True, "ap": True})
    assert plan.weights == {"eu": 0, "us": 50, "ap": 50}
    assert plan.status is ShiftStatus.FAILED_OVER
    assert plan.events
    assert "eu" in plan.message


def test_failback_is_gradual() -> None:
    spec = {"eu": 1, "us": 1}
    plan = _plan(spec, None, 0.0)
    plan = _plan(spec, plan, 1.0, routable={"eu": False, "us": True})
    assert plan.weights == {"eu": 0, "us": 100}
    plan = _plan(spec, plan, 100.0)
    assert plan.weights == {"eu": 20, "us": 80}
    plan = _plan(spec, plan, 200.0)
    assert plan.weights == {"eu": 40, "us": 60}


def test_guard_breach_rolls_back_and_holds_that_target() -> None:
    plan = _plan({"eu": 100, "us": 0}, None, 0.0)
    plan = _plan({"eu": 50, "us": 50}, plan, 60.0)
    assert plan.weights == {"eu": 80, "us": 20}
    bad = {"us": GuardReading(error_rate=0.4)}
    plan = _plan({"eu": 50, "us": 50}, plan, 90.0, guards=bad)
    assert plan.status is ShiftStatus.ROLLED_BACK
    assert plan.weights == {"eu": 100, "us": 0}
    assert "region us failed 40.0% of jobs" in plan.message
    plan = _plan({"eu": 50, "us": 50}, plan, 500.0)
    assert plan.weights == {"eu": 100, "us": 0}, "an aborted target is not retried"
    plan = _plan({"eu": 60, "us": 40}, plan, 600.0)
    assert plan.status is ShiftStatus.SHIFTING, "a new spec starts a new shift"


def test_p99_guard() -> None:
    plan = _plan({"eu": 100, "us": 0}, None, 0.0)
    plan = _plan({"eu": 0, "us": 100}, plan, 60.0)
    plan = _plan({"eu": 0, "us": 100}, plan, 61.0, guards={"us": GuardReading(p99_seconds=9.0)})
    assert plan.status is ShiftStatus.ROLLED_BACK
    assert "p99" in plan.message


def test_last_step_is_watched_before_it_counts() -> None:
    plan = _plan({"eu": 80, "us": 20}, None, 0.0)
    plan = _plan({"eu": 60, "us": 40}, plan, 60.0)
    assert plan.weights == {"eu": 60, "us": 40}
    plan = _plan({"eu": 60, "us": 40}, plan, 70.0)
    assert plan.status is ShiftStatus.SHIFTING
    plan = _plan({"eu": 60, "us": 40}, plan, 80.0, guards={"us": GuardReading(error_rate=1.0)})
    assert plan.weights == {"eu": 80, "us": 20}


def test_fail_static_when_nothing_is_routable() -> None:
    plan = _plan({"eu": 1, "us": 1}, None, 0.0)
    held = _plan({"eu": 1, "us": 1}, plan, 5.0, routable={"eu": False, "us": False})
    assert held.weights == plan.weights
    assert held.status is ShiftStatus.NO_ROUTABLE_REGION


def test_generation_bumps_only_when_weights_change() -> None:
    plan = _plan({"eu": 1, "us": 1}, None, 0.0)
    same = _plan({"eu": 1, "us": 1}, plan, 100.0)
    assert same.generation == plan.generation
    moved = _plan({"eu": 1, "us": 1}, plan, 100.0, routable={"eu": True, "us": False})
    assert moved.generation == plan.generation + 1


def test_weights_always_sum_to_100_over_a_random_walk() -> None:
    rng = random.Random(3)
    regions = ["eu", "us", "ap"]
    plan = None
    for step in range(300):
        spec = {r: rng.randint(0, 5) for r in regions}
        if not any(spec.values()):
            spec["eu"] = 1
        routable = {r: rng.random() > 0.2 for r in regions}
        plan = plan_weights(spec, routable, guards={}, policy=POLICY, previous=plan, now=step * 30.0)
        assert sum(plan.weights.values()) == 100
        assert all(w >= 0 for w in plan.weights.values())


def test_regions_that_carried_no_traffic_yet_get_the_spec_weights_at_once() -> None:
    # A pipeline whose pools appeared after its first pass: nothing is routed yet, nothing to shift.
    first = plan_weights({}, {}, guards={}, policy=ShiftPolicy(step_percent=10), previous=None, now=0.0)
    plan = plan_weights(
        {"eu": 60, "us": 40},
        {"eu": True, "us": True},
        guards={},
        policy=ShiftPolicy(step_percent=10),
        previous=first,
        now=1.0,
    )
    assert plan.weights == {"eu": 60, "us": 40}
    assert plan.generation > first.generation
