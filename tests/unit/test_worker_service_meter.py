"""The service meter: jobs served and busy time, the autoscaler's measure of a replica's speed."""

from __future__ import annotations

import pytest

from pixelmesh.api.latency import bucket_of
from pixelmesh.worker.stats import ServiceMeter


def test_busy_time_counts_overlapping_jobs_once() -> None:
    meter = ServiceMeter()
    meter.started(10.0)
    meter.started(11.0)
    meter.finished(12.0, served=True)
    meter.finished(14.0, served=True)
    assert meter.busy_seconds(100.0) == pytest.approx(4.0)
    assert meter.served == 2


def test_idle_gaps_are_not_busy_time() -> None:
    meter = ServiceMeter()
    meter.started(0.0)
    meter.finished(1.0, served=True)
    meter.started(50.0)
    meter.finished(52.0, served=True)
    assert meter.busy_seconds(60.0) == pytest.approx(3.0)


def test_a_running_stretch_counts_up_to_now() -> None:
    meter = ServiceMeter()
    meter.started(5.0)
    assert meter.busy_seconds(8.0) == pytest.approx(3.0)
    assert meter.active == 1


def test_released_and_duplicate_jobs_are_not_served() -> None:
    meter = ServiceMeter()
    meter.started(0.0)
    meter.finished(0.1, served=False)
    assert meter.served == 0


def test_served_jobs_are_counted_by_latency_bucket_and_the_others_are_not() -> None:
    meter = ServiceMeter()
    for latency in (0.01, 0.3, 0.3, 7.0):
        meter.started(0.0)
        meter.finished(1.0, served=True, latency_seconds=latency)
    meter.started(0.0)
    meter.finished(1.0, served=False, latency_seconds=0.3)  # released: not served
    meter.started(0.0)
    meter.finished(1.0, served=True)  # latency unknown: served, not counted

    counts = meter.latency_counts
    assert sum(counts) == 4
    assert counts[bucket_of(0.3)] == 2
    assert counts[bucket_of(0.01)] == 1
    assert counts[bucket_of(7.0)] == 1
    assert meter.served == 5
