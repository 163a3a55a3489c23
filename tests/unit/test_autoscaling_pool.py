"""A region's capacity shared among its pipelines, and the spec turned into the decision's policy."""

from __future__ import annotations

import pytest

from pixelmesh.api.resources import Autoscaling
from pixelmesh.operator.autoscaling.decision import Decision, ScalingReason
from pixelmesh.operator.autoscaling.policy import interval_seconds, policy_from_spec, rate_window
from pixelmesh.operator.autoscaling.pool import Direction, PoolMember, direction, share_pool


def wants(desired: int, reason: ScalingReason = ScalingReason.BACKLOG) -> Decision:
    return Decision(desired, reason, desired)


def test_without_capacity_every_decision_stands() -> None:
    shares = share_pool(None, [PoolMember("a", 1, wants(30)), PoolMember("b", 2, wants(4))])
    assert {k: d.desired for k, d in shares.items()} == {"a": 30, "b": 4}
    assert all(d.reason is ScalingReason.BACKLOG for d in shares.values())


def test_contention_is_shared_by_priority_then_fairly_and_says_capacity_capped() -> None:
    shares = share_pool(
        10,
        [
            PoolMember("batch", 0, wants(20), priority=0),
            PoolMember("checkout", 0, wants(4), priority=10),
            PoolMember("avatars", 0, wants(20), priority=0),
        ],
    )
    assert {k: d.desired for k, d in shares.items()} == {"checkout": 4, "avatars": 3, "batch": 3}
    assert shares["checkout"].reason is ScalingReason.BACKLOG
    assert shares["batch"].reason is ScalingReason.CAPACITY_CAPPED
    assert shares["batch"].recommendation == 20, "the need stays visible"


def test_keda_members_take_their_current_replicas_off_the_budget() -> None:
    shares = share_pool(10, [PoolMember("keda", 7, None), PoolMember("builtin", 0, wants(9))])
    assert set(shares) == {"builtin"}, "a KEDA member gets no decision"
    assert shares["builtin"].desired == 3


def test_a_full_pool_still_serves_minimums_before_priority() -> None:
    shares = share_pool(
        4,
        [
            PoolMember("low", 2, wants(8), minimum=2, priority=0),
            PoolMember("high", 2, wants(8), priority=9),
        ],
    )
    assert (shares["low"].desired, shares["high"].desired) == (2, 2)


@pytest.mark.parametrize(
    ("current", "desired", "expect"), [(1, 3, Direction.UP), (3, 1, Direction.DOWN), (2, 2, Direction.HOLD)]
)
def test_direction(current: int, desired: int, expect: Direction) -> None:
    assert direction(current, desired) is expect


def test_the_policy_takes_the_specs_knobs_in_seconds() -> None:
    spec = Autoscaling(
        min_replicas=0,
        max_replicas=12,
        target_backlog_per_replica=25,
        target_utilization=0.6,
        scale_down_delay="2m",
        idle_after="1m30s",
        scale_to_zero=True,
    )
    policy = policy_from_spec(spec)
    assert (policy.min_replicas, policy.max_replicas, policy.floor) == (0, 12, 0)
    assert (policy.target_backlog_per_replica, policy.target_utilization) == (25, 0.6)
    assert (policy.scale_down_window, policy.idle_after) == (120.0, 90.0)


def test_a_spec_no_api_server_checked_is_clamped_not_refused() -> None:
    policy = policy_from_spec(Autoscaling(min_replicas=9, max_replicas=3))
    assert (policy.min_replicas, policy.max_replicas) == (3, 3)
    assert policy_from_spec(Autoscaling(min_replicas=0)).floor == 1, "zero needs scaleToZero"


def test_the_interval_comes_from_the_spec_else_the_operator_and_sets_the_rate_window() -> None:
    assert interval_seconds(Autoscaling(), 5.0) == 5.0
    assert interval_seconds(Autoscaling(interval="500ms"), 5.0) == 0.5
    assert interval_seconds(Autoscaling(interval="0s"), 5.0) > 0, "never a busy loop"
    assert rate_window(5.0) == 30.0
