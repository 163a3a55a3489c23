"""The scaling decision, table-driven: each row is a situation and the count it must lead to."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from pixelmesh.operator.autoscaling.decision import (
    CapacityClaim,
    Decision,
    Measurements,
    ScalerMemory,
    ScalingPolicy,
    ScalingReason,
    arrival_rate,
    cap,
    decide,
    resumed_memory,
    service_rate,
    share_capacity,
)

POLICY = ScalingPolicy(
    min_replicas=0, max_replicas=20, target_backlog_per_replica=10, idle_after=60.0, scale_down_window=300.0
)


@dataclass(frozen=True)
class Row:
    name: str
    m: Measurements
    expect: int
    reason: ScalingReason
    memory: ScalerMemory = field(default_factory=ScalerMemory)
    policy: ScalingPolicy = POLICY
    now: float = 1000.0


ROWS = [
    Row("spike scales up immediately, bounded by the step", Measurements(2, 150), 6, ScalingReason.BACKLOG),
    Row("a large fleet may double in one step", Measurements(8, 190), 16, ScalingReason.BACKLOG),
    Row("backlog beyond max is clamped", Measurements(16, 5000), 20, ScalingReason.MAXIMUM),
    Row("steady state holds", Measurements(5, 20, 40.0, 10.0), 5, ScalingReason.ARRIVAL_RATE),
    Row(
        "arrival rate dominates an empty queue",
        Measurements(2, 0, 60.0, 10.0),
        6,
        ScalingReason.ARRIVAL_RATE,
    ),
    Row("activation: first message from zero", Measurements(0, 1), 1, ScalingReason.BACKLOG),
    Row(
        "missing backlog holds the count", Measurements(7, None, 0.0, 10.0), 7, ScalingReason.MISSING_METRICS
    ),
    Row("missing backlog never scales to zero", Measurements(3, None), 3, ScalingReason.MISSING_METRICS),
    Row(
        "missing service rate falls back to the backlog",
        Measurements(1, 30, 500.0, None),
        3,
        ScalingReason.BACKLOG,
    ),
    Row(
        "drain: scale-down waits for the highest recommendation in the window",
        Measurements(10, 20),
        8,
        ScalingReason.STABILISING,
        memory=ScalerMemory(recommendations=((800.0, 8), (900.0, 5))),
    ),
    Row(
        "drain: old recommendations outside the window do not hold",
        Measurements(10, 20),
        2,
        ScalingReason.BACKLOG,
        memory=ScalerMemory(recommendations=((600.0, 10),)),
    ),
    Row(
        "idle but not yet for long keeps one replica",
        Measurements(3, 0, 0.0, 10.0),
        1,
        ScalingReason.IDLE,
        memory=ScalerMemory(idle_since=990.0),
    ),
    Row(
        "idle long enough goes to zero",
        Measurements(3, 0, 0.0, 10.0),
        0,
        ScalingReason.IDLE,
        memory=ScalerMemory(recommendations=((950.0, 3),), idle_since=900.0),
    ),
    Row(
        "idle long enough stops at minReplicas",
        Measurements(3, 0),
        2,
        ScalingReason.IDLE,
        memory=ScalerMemory(idle_since=0.0),
        policy=ScalingPolicy(min_replicas=2, max_replicas=5, idle_after=10.0),
    ),
    Row(
        "scale to zero disabled keeps one",
        Measurements(3, 0),
        1,
        ScalingReason.IDLE,
        memory=ScalerMemory(idle_since=0.0),
        policy=ScalingPolicy(max_replicas=5, idle_after=10.0, scale_to_zero=False),
    ),
    Row("nothing running, nothing pending stays at zero", Measurements(0, 0), 0, ScalingReason.IDLE),
    Row(
        "minReplicas holds a quiet but busy pipeline",
        Measurements(3, 5),
        2,
        ScalingReason.MINIMUM,
        policy=ScalingPolicy(min_replicas=2, max_replicas=5),
        memory=ScalerMemory(recommendations=((990.0, 2),)),
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_decision_table(row: Row) -> None:
    decision = decide(row.policy, row.m, row.memory, row.now)
    assert (decision.desired, decision.reason) == (row.expect, row.reason)


def test_scale_up_step_is_per_period_not_per_decision() -> None:
    """Replicas still starting count against the step: three quick decisions do not triple it."""
    memory = ScalerMemory()
    current = 2
    for now in (0.0, 5.0, 10.0):
        d = decide(POLICY, Measurements(current, 1000), memory, now)
        memory, current = d.memory, d.desired
    assert current == 6
    d = decide(POLICY, Measurements(current, 1000), memory, 15.0)
    assert d.desired == 12


def test_idle_clock_restarts_when_work_arrives() -> None:
    memory = decide(POLICY, Measurements(2, 0), ScalerMemory(), 0.0).memory
    assert memory.idle_since == 0.0
    memory = decide(POLICY, Measurements(2, 5), memory, 30.0).memory
    assert memory.idle_since is None
    d = decide(POLICY, Measurements(2, 0), memory, 70.0)
    assert d.desired == 1
    assert d.memory.idle_since == 70.0


def test_window_forgets_what_is_older_than_the_window() -> None:
    memory = ScalerMemory(recommendations=tuple((float(t), 9) for t in range(0, 1000, 100)))
    d = decide(POLICY, Measurements(9, 90), memory, 1000.0)
    assert all(t > 700.0 for t, _ in d.memory.recommendations)


@pytest.mark.parametrize(
    ("capacity", "claims", "expect"),
    [
        pytest.param(None, [CapacityClaim("a", 50)], {"a": 50}, id="unlimited"),
        pytest.param(10, [CapacityClaim("a", 4), CapacityClaim("b", 3)], {"a": 4, "b": 3}, id="fits"),
        pytest.param(10, [CapacityClaim("a", 20), CapacityClaim("b", 20)], {"a": 5, "b": 5}, id="fair split"),
        pytest.param(
            10,
            [CapacityClaim("a", 2), CapacityClaim("b", 20), CapacityClaim("c", 20)],
            {"a": 2, "b": 4, "c": 4},
            id="small wish leaves room for the others",
        ),
        pytest.param(
            10,
            [CapacityClaim("low", 20), CapacityClaim("high", 8, priority=5)],
            {"low": 2, "high": 8},
            id="priority first",
        ),
        pytest.param(
            6,
            [CapacityClaim("low", 20, minimum=3), CapacityClaim("high", 20, priority=5)],
            {"low": 3, "high": 3},
            id="minimums before priority",
        ),
        pytest.param(
            7, [CapacityClaim("a", 20), CapacityClaim("b", 20)], {"a": 4, "b": 3}, id="odd capacity"
        ),
    ],
)
def test_share_capacity(capacity: int | None, claims: list[CapacityClaim], expect: dict[str, int]) -> None:
    granted = share_capacity(capacity, claims)
    assert granted == expect
    if capacity is not None:
        assert sum(granted.values()) <= capacity


def test_cap_says_capacity_capped_only_when_it_bites() -> None:
    d = Decision(8, ScalingReason.BACKLOG, 8)
    assert cap(d, 10) == d
    capped = cap(d, 5)
    assert (capped.desired, capped.reason) == (5, ScalingReason.CAPACITY_CAPPED)


def test_arrival_rate_from_sequence_deltas() -> None:
    samples = [(0.0, 100), (5.0, 150), (10.0, 200)]
    assert arrival_rate(samples, 10.0) == pytest.approx(10.0)
    assert arrival_rate(samples[:1], 10.0) is None
    assert arrival_rate([(0.0, 100), (100.0, 200)], 100.0, window=30.0) is None


def test_service_rate_uses_busy_time() -> None:
    assert service_rate({"w1": (100.0, 10.0), "w2": (50.0, 10.0)}) == pytest.approx(7.5)
    assert service_rate({"w1": (0.0, 0.0)}) is None


def test_policy_rejects_min_above_max() -> None:
    with pytest.raises(ValueError, match="minReplicas <= maxReplicas"):
        ScalingPolicy(min_replicas=5, max_replicas=2)


def test_a_lowered_maximum_applies_at_once_whatever_the_window_remembers() -> None:
    memory = ScalerMemory(recommendations=((990.0, 20),))
    d = decide(ScalingPolicy(max_replicas=5), Measurements(20, 1000), memory, 1000.0)
    assert (d.desired, d.reason) == (5, ScalingReason.MAXIMUM)


def test_after_a_restart_nothing_shrinks_for_one_window_but_growth_is_immediate() -> None:
    """The memory is lost with the operator: the current count is taken as just recommended."""
    memory = resumed_memory(8, now=1000.0)
    quiet = decide(POLICY, Measurements(8, 10), memory, 1000.0)
    assert (quiet.desired, quiet.reason) == (8, ScalingReason.STABILISING)
    later = decide(POLICY, Measurements(8, 10), quiet.memory, 1000.0 + POLICY.scale_down_window + 1)
    assert later.desired == 1
    busy = decide(POLICY, Measurements(8, 150), resumed_memory(8, now=1000.0), 1000.0)
    assert busy.desired == 15


def test_missing_metrics_never_scale_to_zero_even_after_a_long_idle() -> None:
    memory = ScalerMemory(idle_since=0.0)
    d = decide(POLICY, Measurements(2, None, 0.0, 10.0), memory, 10_000.0)
    assert (d.desired, d.reason) == (2, ScalingReason.MISSING_METRICS)
