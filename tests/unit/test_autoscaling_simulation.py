"""The autoscaler against a queue model: bounded backlog, no flapping, cheaper than a peak-sized fleet."""

from __future__ import annotations

import dataclasses

import pytest

from pixelmesh.operator.autoscaling.decision import ScalingPolicy
from pixelmesh.operator.autoscaling.simulate import Report, render, simulate, standard_scenarios

POLICY = ScalingPolicy(max_replicas=80)


@pytest.fixture(scope="module")
def reports() -> dict[str, Report]:
    results = {s.name: simulate(s, POLICY) for s in standard_scenarios()}
    print("\n" + render(list(results.values())))
    return results


@pytest.mark.parametrize("name", ["step-10x", "sine-day", "burst"])
def test_every_job_completes_and_the_backlog_drains(reports: dict[str, Report], name: str) -> None:
    r = reports[name]
    assert r.final_backlog < 1.0
    assert r.completed == pytest.approx(r.arrived, abs=1.0)


@pytest.mark.parametrize(
    ("name", "max_wait"),
    [("step-10x", 60.0), ("sine-day", 30.0), ("burst", 90.0)],
)
def test_no_job_waits_long(reports: dict[str, Report], name: str, max_wait: float) -> None:
    """Waits stay within about a replica start-up plus a few scale-up periods."""
    assert reports[name].max_wait <= max_wait


@pytest.mark.parametrize(("name", "most"), [("step-10x", 4), ("sine-day", 6), ("burst", 4)])
def test_no_flapping(reports: dict[str, Report], name: str, most: int) -> None:
    """A 10x step turns around at most a couple of times; a day of two cycles, a few more."""
    assert reports[name].direction_changes <= most


@pytest.mark.parametrize("name", ["step-10x", "sine-day", "burst"])
def test_cheaper_than_a_fleet_sized_for_the_peak(reports: dict[str, Report], name: str) -> None:
    assert reports[name].cost_ratio < 0.9


def test_burst_scales_to_zero_after_the_traffic_stops(reports: dict[str, Report]) -> None:
    assert reports["burst"].scaled_to_zero


def test_without_stabilisation_the_fleet_flaps() -> None:
    """The stabilisation window is what prevents flapping: removing it shows the difference."""
    sine = standard_scenarios()[1]
    damped = simulate(sine, POLICY)
    undamped = simulate(sine, ScalingPolicy(max_replicas=80, scale_down_window=0.0))
    assert undamped.direction_changes > 3 * damped.direction_changes


def test_the_measured_rates_beat_sizing_by_the_backlog_alone() -> None:
    """KEDA's `ceil(lag / lagThreshold)` lets a backlog build before it adds workers and chases it."""
    sine = standard_scenarios()[1]
    with_rates = simulate(sine, POLICY)
    lag_only = simulate(dataclasses.replace(sine, rates=False), POLICY)
    assert with_rates.peak_backlog * 5 < lag_only.peak_backlog
    assert with_rates.max_wait < lag_only.max_wait
    assert with_rates.direction_changes * 10 < lag_only.direction_changes
