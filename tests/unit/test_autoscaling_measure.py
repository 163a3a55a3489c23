"""Readings become measurements: arrival and service rates from differences between reads."""

from __future__ import annotations

import pytest

from pixelmesh.operator.autoscaling.decision import Measurements
from pixelmesh.operator.autoscaling.measure import QueueReading, RateMemory, WorkerTotals, measure

WINDOW = 30.0


def run(readings: list[tuple[float, QueueReading]], memory: RateMemory | None = None) -> list[Measurements]:
    """Feed readings in order; the measurements of each."""
    memory = memory or RateMemory()
    seen = []
    for now, reading in readings:
        m, memory = measure(memory, reading, current_replicas=2, now=now, window=WINDOW)
        seen.append(m)
    return seen


def test_the_arrival_rate_is_the_growth_of_the_stream_sequence_over_time() -> None:
    first, second, third = run(
        [(0.0, QueueReading(5, 100)), (5.0, QueueReading(5, 150)), (10.0, QueueReading(0, 200))]
    )
    assert first.arrival_rate is None, "one sample spans no time"
    assert second.arrival_rate == pytest.approx(10.0)
    assert third.arrival_rate == pytest.approx(10.0)
    assert third.backlog == 0


def test_arrivals_older_than_the_window_are_forgotten() -> None:
    *_, last = run([(0.0, QueueReading(0, 0)), (5.0, QueueReading(0, 1000)), (100.0, QueueReading(0, 1000))])
    assert last.arrival_rate is None, "only one sample inside the window"
    *_, quiet = run(
        [
            (0.0, QueueReading(0, 0)),
            (5.0, QueueReading(0, 1000)),
            (40.0, QueueReading(0, 1000)),
            (45.0, QueueReading(0, 1000)),
        ]
    )
    assert quiet.arrival_rate == 0.0


def test_a_recreated_stream_starts_its_samples_afresh() -> None:
    *_, after = run([(0.0, QueueReading(0, 5000)), (5.0, QueueReading(0, 10)), (10.0, QueueReading(0, 60))])
    assert after.arrival_rate == pytest.approx(10.0)


def test_a_failed_stream_read_leaves_the_arrival_rate_out() -> None:
    *_, failed = run([(0.0, QueueReading(0, 0)), (5.0, QueueReading(0, 50)), (10.0, QueueReading(0, None))])
    assert failed.arrival_rate is None


def workers(*totals: tuple[str, int, float]) -> tuple[WorkerTotals, ...]:
    return tuple(WorkerTotals(name, served, busy) for name, served, busy in totals)


def test_the_service_rate_is_jobs_over_busy_time_summed_over_workers() -> None:
    _, m = run(
        [
            (0.0, QueueReading(0, 0, workers(("a", 100, 50.0), ("b", 10, 10.0)))),
            (5.0, QueueReading(0, 0, workers(("a", 120, 54.0), ("b", 30, 14.0)))),
        ]
    )
    # Whole totals at first sight (110 jobs / 60 s) plus the growth since (40 jobs / 8 s).
    assert m.service_rate == pytest.approx(150 / 68)


def test_a_restarted_worker_counts_from_zero_and_a_new_one_counts_whole() -> None:
    memory = RateMemory(totals=workers(("a", 500, 100.0)))
    (m,) = run([(100.0, QueueReading(0, 0, workers(("a", 20, 2.0), ("c", 10, 1.0))))], memory)
    assert m.service_rate == pytest.approx(30 / 3.0)


def test_an_idle_fleet_keeps_the_last_good_rate() -> None:
    busy = QueueReading(0, 0, workers(("a", 40, 4.0)))
    idle = QueueReading(0, 0, workers(("a", 40, 4.0)))
    rates = [m.service_rate for m in run([(0.0, busy), (5.0, idle), (60.0, idle), (600.0, idle)])]
    assert rates == [pytest.approx(10.0)] * 4


def test_a_failed_report_read_keeps_the_last_rate_and_the_totals() -> None:
    first, failed, later = run(
        [
            (0.0, QueueReading(0, 0, workers(("a", 10, 1.0)))),
            (5.0, QueueReading(0, 0, None)),
            (10.0, QueueReading(0, 0, workers(("a", 30, 3.0)))),
        ]
    )
    assert first.service_rate == failed.service_rate == pytest.approx(10.0)
    assert later.service_rate == pytest.approx(10.0)


def test_the_service_rate_follows_recent_work_not_a_lifetime_average() -> None:
    slow = [(float(t), QueueReading(0, 0, workers(("a", t, t * 1.0)))) for t in range(0, 30, 5)]
    fast_start = 25
    fast = [
        (float(t), QueueReading(0, 0, workers(("a", fast_start + (t - 25) * 10, 25.0 + (t - 25)))))
        for t in range(30, 100, 5)
    ]
    *_, last = run([*slow, *fast])
    assert last.service_rate == pytest.approx(10.0)


def test_a_missing_backlog_is_missing_whatever_the_rates_say() -> None:
    (m,) = run([(0.0, QueueReading(None, 10, workers(("a", 1, 1.0))))])
    assert m.backlog is None
    assert m.current_replicas == 2
