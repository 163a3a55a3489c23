"""Job latency histograms (`pixelmesh.api.latency`) and the guard readings made of them."""

from __future__ import annotations

import math

import pytest

from pixelmesh.api.latency import BUCKETS, LATENCY_BOUNDS_SECONDS, add, bucket_of, growth, quantile
from pixelmesh.operator.autoscaling.measure import WorkerTotals
from pixelmesh.operator.federation.guards import GuardTotals


def counts_of(latencies: list[float]) -> list[int]:
    counts = [0] * BUCKETS
    for seconds in latencies:
        counts[bucket_of(seconds)] += 1
    return counts


@pytest.mark.parametrize(
    ("seconds", "bound"),
    [(0.0, 0.05), (0.05, 0.05), (0.051, 0.1), (1.0, 1.0), (299.0, 300.0), (-1.0, 0.05)],
)
def test_a_latency_falls_in_the_first_bucket_whose_bound_holds_it(seconds: float, bound: float) -> None:
    assert LATENCY_BOUNDS_SECONDS[bucket_of(seconds)] == bound


def test_a_latency_above_every_bound_goes_to_the_last_bucket() -> None:
    assert bucket_of(301.0) == BUCKETS - 1
    assert quantile(counts_of([301.0]), 0.99) == math.inf


def test_the_p99_is_the_bound_of_the_bucket_of_the_99th_percentile() -> None:
    fast = [0.2] * 990
    assert quantile(counts_of(fast + [8.0] * 10), 0.99) == 0.25
    assert quantile(counts_of(fast + [8.0] * 11), 0.99) == 10.0
    assert quantile([0] * BUCKETS, 0.99) is None


def test_a_quantile_outside_0_to_1_is_refused() -> None:
    with pytest.raises(ValueError, match="q must be"):
        quantile(counts_of([1.0]), 0.0)


def test_growth_is_none_when_totals_went_down_or_do_not_line_up() -> None:
    before = counts_of([0.2, 3.0])
    assert growth(counts_of([0.2, 0.2, 3.0]), before) == counts_of([0.2])
    assert growth(counts_of([0.2]), before) is None  # a worker began again
    assert growth([1, 2], before) is None  # another layout


def test_workers_counts_add_up_and_another_layout_is_left_out() -> None:
    assert add([counts_of([0.2]), counts_of([0.2, 9.0]), [5, 5]]) == counts_of([0.2, 0.2, 9.0])


def totals(served: int, failed: int, latencies: list[float]) -> GuardTotals:
    worker = WorkerTotals("w", served, 1.0, failed, tuple(counts_of(latencies)))
    return GuardTotals.of([worker])


def test_a_reading_covers_only_the_jobs_served_since_the_last_pass() -> None:
    before = totals(100, 0, [0.2] * 100)
    now = totals(200, 5, [0.2] * 100 + [0.2] * 90 + [20.0] * 10)

    reading = now.reading_since(before)

    assert reading is not None
    assert reading.error_rate == pytest.approx(0.05)
    assert reading.p99_seconds == 30.0


def test_no_reading_without_new_jobs_or_after_a_restart() -> None:
    before = totals(100, 1, [0.2] * 100)
    assert before.reading_since(before) is None
    assert totals(10, 0, [0.2] * 10).reading_since(before) is None


def test_workers_that_do_not_count_latency_give_an_error_rate_alone() -> None:
    before = GuardTotals.of([WorkerTotals("old", 10, 1.0, 0)])
    now = GuardTotals.of([WorkerTotals("old", 20, 2.0, 1)])

    reading = now.reading_since(before)

    assert reading is not None
    assert reading.error_rate == pytest.approx(0.1)
    assert reading.p99_seconds is None
