"""The bench's numbers: per-cell statistics, ratios, the printed tables and the JSON document.

Everything here is pure: a `CellResult` is what one contender did on one workload at one
parallelism; the rest derives from a list of them. A ratio is images/s of one contender divided by
images/s of another on the same workload and parallelism (above 1: the first is faster). The ratio
lines printed last use the highest parallelism of the run: that is how a deployment uses the cores.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

BASELINES: tuple[str, ...] = ("raw-libvips", "thumbor")
MiB = 1024 * 1024


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0-100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True, slots=True)
class CellResult:
    """One contender on one workload at one parallelism: the measured phase."""

    contender: str
    workload: str
    parallelism: int
    wall_seconds: float
    latencies: tuple[float, ...]
    """Seconds per image."""
    cpu_seconds: Mapping[str, float]
    """By process role."""
    peak_rss_bytes: Mapping[str, int]
    """By process role (sum of the role's processes' peaks)."""
    output_bytes: Mapping[str, float] = field(default_factory=dict)
    """Mean encoded size per variant, from the warm-up pass."""

    @property
    def images(self) -> int:
        return len(self.latencies)

    @property
    def images_per_second(self) -> float:
        return self.images / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def cpu_seconds_per_image(self) -> float:
        return sum(self.cpu_seconds.values()) / self.images if self.images else 0.0

    @property
    def p50_seconds(self) -> float:
        return percentile(self.latencies, 50)

    @property
    def p99_seconds(self) -> float:
        return percentile(self.latencies, 99)

    @property
    def total_peak_rss_bytes(self) -> int:
        return sum(self.peak_rss_bytes.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "contender": self.contender,
            "workload": self.workload,
            "parallelism": self.parallelism,
            "images": self.images,
            "wall_seconds": self.wall_seconds,
            "images_per_second": self.images_per_second,
            "cpu_seconds_per_image": self.cpu_seconds_per_image,
            "p50_seconds": self.p50_seconds,
            "p99_seconds": self.p99_seconds,
            "peak_rss_bytes": self.total_peak_rss_bytes,
            "cpu_seconds_by_role": dict(self.cpu_seconds),
            "peak_rss_bytes_by_role": dict(self.peak_rss_bytes),
            "output_bytes_by_variant": dict(self.output_bytes),
            "latencies": list(self.latencies),
        }


@dataclass(frozen=True, slots=True)
class RoundResult:
    """One measured pass of one contender over the images."""

    wall_seconds: float
    latencies: tuple[float, ...]
    cpu_seconds: Mapping[str, float]
    peak_rss_bytes: Mapping[str, int]
    load1: float = 0.0
    """The 1-minute load average right after the pass."""


def combine_rounds(
    contender: str,
    workload: str,
    parallelism: int,
    rounds: Sequence[RoundResult],
    output_bytes: Mapping[str, float] | None = None,
) -> CellResult:
    """One cell from its passes: wall time, latencies and CPU add up; peak RSS is the highest peak."""
    if not rounds:
        raise ValueError(f"no measured rounds for {contender} on {workload}")
    cpu: dict[str, float] = {}
    rss: dict[str, int] = {}
    for result in rounds:
        for role, seconds in result.cpu_seconds.items():
            cpu[role] = cpu.get(role, 0.0) + seconds
        for role, peak in result.peak_rss_bytes.items():
            rss[role] = max(rss.get(role, 0), peak)
    return CellResult(
        contender=contender,
        workload=workload,
        parallelism=parallelism,
        wall_seconds=sum(result.wall_seconds for result in rounds),
        latencies=tuple(latency for result in rounds for latency in result.latencies),
        cpu_seconds=cpu,
        peak_rss_bytes=rss,
        output_bytes=dict(output_bytes or {}),
    )


@dataclass(frozen=True, slots=True)
class Ratio:
    """images/s of `contender` over images/s of `baseline`, same workload and parallelism."""

    contender: str
    baseline: str
    workload: str
    parallelism: int
    value: float

    def line(self) -> str:
        return f"ratio {self.contender}/{self.baseline} {self.workload}: {self.value:.2f}"

    def to_json(self) -> dict[str, Any]:
        return {
            "contender": self.contender,
            "baseline": self.baseline,
            "workload": self.workload,
            "parallelism": self.parallelism,
            "value": self.value,
        }


def throughput_ratio(contender: CellResult, baseline: CellResult) -> float:
    """How many times the contender's throughput is the baseline's (nan when the baseline made nothing)."""
    if baseline.images_per_second <= 0:
        return math.nan
    return contender.images_per_second / baseline.images_per_second


def _index(results: Iterable[CellResult]) -> dict[tuple[str, str, int], CellResult]:
    return {(cell.contender, cell.workload, cell.parallelism): cell for cell in results}


def compute_ratios(results: Sequence[CellResult], baselines: Sequence[str] = BASELINES) -> list[Ratio]:
    """Every contender against every baseline present, per workload and parallelism, in run order."""
    cells = _index(results)
    ratios = []
    for cell in results:
        for baseline in baselines:
            if baseline == cell.contender:
                continue
            base = cells.get((baseline, cell.workload, cell.parallelism))
            if base is not None:
                ratios.append(
                    Ratio(
                        cell.contender,
                        baseline,
                        cell.workload,
                        cell.parallelism,
                        throughput_ratio(cell, base),
                    )
                )
    return ratios


def headline_ratios(ratios: Sequence[Ratio]) -> list[Ratio]:
    """The ratios at the highest parallelism, ordered by baseline, then workload and contender as run."""
    if not ratios:
        return []
    top = max(ratio.parallelism for ratio in ratios)
    chosen = [ratio for ratio in ratios if ratio.parallelism == top]
    order = {baseline: position for position, baseline in enumerate(BASELINES)}
    return sorted(chosen, key=lambda ratio: order.get(ratio.baseline, len(order)))


def _format_ratio(value: float | None) -> str:
    if value is None:
        return "-"
    if math.isnan(value):
        return "n/a"
    return f"{value:.2f}"


TABLE_COLUMNS: tuple[tuple[str, int], ...] = (
    ("contender", 25),
    ("par", 3),
    ("images/s", 8),
    ("cpu-s/img", 9),
    ("p50 ms", 8),
    ("p99 ms", 8),
    ("peak RSS MiB", 12),
    ("vs raw-libvips", 14),
    ("vs thumbor", 10),
)


def render_table(workload: str, description: str, results: Sequence[CellResult]) -> str:
    """The table of one workload: a row per contender and parallelism, with both ratios."""
    cells = _index(results)
    rows = [cell for cell in results if cell.workload == workload]
    header = "  ".join(
        name.ljust(width) if position == 0 else name.rjust(width)
        for position, (name, width) in enumerate(TABLE_COLUMNS)
    )
    lines = [f"== {workload}: {description}", header, "-" * len(header)]
    for cell in rows:
        vs: list[float | None] = []
        for baseline in BASELINES:
            base = cells.get((baseline, workload, cell.parallelism))
            vs.append(throughput_ratio(cell, base) if base is not None else None)
        values = (
            cell.contender,
            str(cell.parallelism),
            f"{cell.images_per_second:.2f}",
            f"{cell.cpu_seconds_per_image:.3f}",
            f"{cell.p50_seconds * 1000:.0f}",
            f"{cell.p99_seconds * 1000:.0f}",
            f"{cell.total_peak_rss_bytes / MiB:.0f}",
            _format_ratio(vs[0]),
            _format_ratio(vs[1]),
        )
        lines.append(
            "  ".join(
                value.ljust(width) if position == 0 else value.rjust(width)
                for position, (value, (_, width)) in enumerate(zip(values, TABLE_COLUMNS, strict=True))
            )
        )
    return "\n".join(lines)


def render_machine(machine: Mapping[str, Any]) -> str:
    """Machine facts as `key: value` lines (nested mappings flattened with dots)."""
    lines = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, list | tuple):
            lines.append(f"{prefix}: {', '.join(map(str, value))}")
        else:
            lines.append(f"{prefix}: {value}")

    walk("", machine)
    return "\n".join(lines)


def build_document(
    *,
    machine: Mapping[str, Any],
    run: Mapping[str, Any],
    settings: Mapping[str, Any],
    results: Sequence[CellResult],
) -> dict[str, Any]:
    """The JSON document written to `bench/results/latest.json`."""
    ratios = compute_ratios(results)
    return {
        "machine": dict(machine),
        "run": dict(run),
        "settings": dict(settings),
        "results": [cell.to_json() for cell in results],
        "ratios": [ratio.to_json() for ratio in ratios],
        "headline_ratios": [ratio.line() for ratio in headline_ratios(ratios)],
    }
