"""Measuring a contender: CPU time and peak memory of its processes, latency of each image.

Problem: a contender is several processes (workers, nats-server, a gateway, thumbor instances) and
the driver that feeds it must not be counted. Approach: every contender names its processes by role;
the probe reads their CPU time (`utime + stime` of `/proc/<pid>/stat`, threads included) before and
after the measured phase, resets each peak RSS before it (writing 5 to `/proc/<pid>/clear_refs`) and
reads `VmHWM` after it. Peak RSS of a contender is the sum of its processes' peaks: an upper bound
on their simultaneous peak, exact for a single process. Latency is timed by the driver per image,
around everything the contender does for it (for PixelMesh: publish to result).

Caveat: CPU time has the kernel's clock-tick resolution (10 ms); measured phases last seconds.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

Item = TypeVar("Item")
Value = TypeVar("Value")


def parse_cpu_ticks(stat_text: str) -> int:
    """utime + stime (clock ticks) from the text of `/proc/<pid>/stat`.

    The command name (field 2) is in parentheses and may contain spaces or parentheses, so fields
    are counted after its last `)`.
    """
    fields = stat_text[stat_text.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return int(fields[11]) + int(fields[12])


def parse_status_kib(status_text: str, key: str) -> int:
    """A `kB` value of `/proc/<pid>/status`, e.g. `VmHWM`; 0 when absent."""
    for line in status_text.splitlines():
        name, _, value = line.partition(":")
        if name == key:
            return int(value.split()[0])
    return 0


def cpu_seconds(pid: int) -> float:
    """CPU time the process has used so far (all its threads); 0 if it is gone."""
    try:
        return parse_cpu_ticks(Path(f"/proc/{pid}/stat").read_text()) / CLOCK_TICKS
    except (OSError, ValueError, IndexError):
        return 0.0


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident set since start or the last reset; 0 if it is gone."""
    try:
        return parse_status_kib(Path(f"/proc/{pid}/status").read_text(), "VmHWM") * 1024
    except OSError:
        return 0


def reset_peak_rss(pid: int) -> None:
    """Start a new peak-RSS window for the process (Linux >= 4.0)."""
    # A process that is gone, or not ours, keeps its old window: its peak then covers its whole life.
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")


@dataclass(frozen=True, slots=True)
class ResourceUsage:
    """What a contender's processes used during a measured phase, by role."""

    cpu_seconds: Mapping[str, float]
    peak_rss_bytes: Mapping[str, int]

    @property
    def total_cpu_seconds(self) -> float:
        return sum(self.cpu_seconds.values())

    @property
    def total_peak_rss_bytes(self) -> int:
        return sum(self.peak_rss_bytes.values())


class ResourceProbe:
    """Brackets a measured phase: `start()` before, `stop()` after, for a fixed set of processes."""

    def __init__(self, processes: Mapping[str, Sequence[int]]) -> None:
        self._processes = {role: list(pids) for role, pids in processes.items()}
        self._cpu_before: dict[int, float] = {}

    def start(self) -> None:
        for pids in self._processes.values():
            for pid in pids:
                reset_peak_rss(pid)
                self._cpu_before[pid] = cpu_seconds(pid)

    def stop(self) -> ResourceUsage:
        cpu: dict[str, float] = {}
        rss: dict[str, int] = {}
        for role, pids in self._processes.items():
            cpu[role] = sum(max(0.0, cpu_seconds(pid) - self._cpu_before.get(pid, 0.0)) for pid in pids)
            rss[role] = sum(peak_rss_bytes(pid) for pid in pids)
        return ResourceUsage(cpu_seconds=cpu, peak_rss_bytes=rss)


@dataclass(frozen=True, slots=True)
class Timed(Generic[Value]):
    """One item's outcome in a closed loop: when it started (monotonic), how long it took, what it gave."""

    index: int
    started: float
    seconds: float
    value: Value


def run_closed_loop(
    items: Sequence[Item], lanes: int, handle: Callable[[int, Item], Value]
) -> list[Timed[Value]]:
    """Process `items` with `lanes` threads, each taking the next item when done with the last.

    `handle(lane, item)` does one item; lane numbers let a lane keep its own connection or server.
    Results come back in item order. The first exception stops the loop and is raised.
    """
    pending: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index in range(len(items)):
        pending.put(index)
    results: list[Timed[Value] | None] = [None] * len(items)
    failures: list[BaseException] = []

    def lane_loop(lane: int) -> None:
        while not failures:
            try:
                index = pending.get_nowait()
            except queue.Empty:
                return
            started = time.perf_counter()
            try:
                value = handle(lane, items[index])
            except BaseException as exc:
                failures.append(exc)
                return
            results[index] = Timed(index, started, time.perf_counter() - started, value)

    threads = [
        threading.Thread(target=lane_loop, args=(lane,), name=f"bench-lane-{lane}") for lane in range(lanes)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return [result for result in results if result is not None]
