"""Reading a contender's processes from /proc, and the closed loop that feeds it."""

from __future__ import annotations

import os
import threading

import pytest

from bench.measure import ResourceProbe, parse_cpu_ticks, parse_status_kib, peak_rss_bytes, run_closed_loop

STAT = "4242 (odd) name (x)) S 1 4242 4242 0 -1 4194560 500 0 0 0 1234 567 8 9 20 0 3 0 100 1000 50"


def test_cpu_ticks_are_counted_after_the_last_parenthesis_of_the_command_name():
    assert parse_cpu_ticks(STAT) == 1234 + 567


def test_status_values_are_read_in_kib_and_absent_ones_are_zero():
    status = "Name:\tpython\nVmPeak:\t  2048 kB\nVmHWM:\t  1536 kB\nVmRSS:\t  1024 kB\n"
    assert parse_status_kib(status, "VmHWM") == 1536
    assert parse_status_kib(status, "VmSwap") == 0


def test_probe_reports_every_role_of_live_processes():
    probe = ResourceProbe({"runner": [os.getpid()], "gone": [2**22 + 7]})
    probe.start()
    sum(i * i for i in range(200_000))
    usage = probe.stop()
    assert set(usage.cpu_seconds) == {"runner", "gone"}
    assert usage.cpu_seconds["runner"] >= 0.0
    assert usage.cpu_seconds["gone"] == 0.0
    assert usage.peak_rss_bytes["runner"] > 0
    assert usage.peak_rss_bytes["gone"] == 0
    assert usage.total_peak_rss_bytes == usage.peak_rss_bytes["runner"]


def test_peak_rss_of_a_missing_process_is_zero():
    assert peak_rss_bytes(2**22 + 7) == 0


def test_closed_loop_returns_results_in_item_order_and_uses_every_lane():
    lanes_seen: set[int] = set()
    both_started = threading.Barrier(2, timeout=5)

    def handle(lane: int, item: int) -> int:
        lanes_seen.add(lane)
        if item < 2:
            both_started.wait()  # the first two items run at once, one per lane
        return item * 10

    results = run_closed_loop(list(range(7)), 2, handle)
    assert [r.value for r in results] == [i * 10 for i in range(7)]
    assert [r.index for r in results] == list(range(7))
    assert lanes_seen == {0, 1}
    assert all(r.seconds >= 0 for r in results)


def test_closed_loop_raises_the_first_failure():
    def handle(_lane: int, item: int) -> int:
        if item == 3:
            raise ValueError("item 3 is broken")
        return item

    with pytest.raises(ValueError, match="item 3 is broken"):
        run_closed_loop(list(range(6)), 2, handle)
