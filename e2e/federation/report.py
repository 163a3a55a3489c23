"""The report of a federation scenario: jobs accepted / completed / reprocessed / duplicates / lost,
failover, RPO.

One `ScenarioReport` per scenario, rendered as a short table for the terminal (`render`) and as
JSON for CI and the docs (`as_json`, `write_reports`). Building it is pure: the figures come from a
ledger's `Tally` and the timings the scenario measured.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from e2e.federation.ledger import RegionTally, Tally


@dataclass(frozen=True, slots=True)
class ScenarioReport:
    """What one scenario measured."""

    scenario: str
    tally: Tally
    duration_seconds: float
    failover_seconds: Mapping[str, float] = field(default_factory=dict)
    """Named intervals around a region's loss and recovery, e.g. `weight_zero`, `backup_draining`."""
    rpo_jobs: int | None = None
    """Accepted jobs lost to a region's loss (None: no region was lost)."""
    rpo_seconds: float | None = None
    """The mirror lag at the loss in seconds, when one was measured."""
    mirror_lag_messages: int | None = None
    """The mirror lag (jobs not yet copied to the backup) last read before the loss."""
    notes: Mapping[str, Any] = field(default_factory=dict)
    """Anything else worth keeping: start-up timings, latencies, CPU seconds."""

    def as_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "durationSeconds": round(self.duration_seconds, 3),
            "regions": {name: asdict(counts) for name, counts in self.tally.regions.items()},
            "total": asdict(self.tally.total),
            "completedBy": dict(self.tally.completed_by),
            "lostJobs": list(self.tally.lost_jobs),
            "duplicateJobs": list(self.tally.duplicate_jobs),
            "reprocessedJobs": len(self.tally.reprocessed_jobs),
            "failoverSeconds": {k: round(v, 3) for k, v in self.failover_seconds.items()},
            "rpoJobs": self.rpo_jobs,
            "rpoSeconds": self.rpo_seconds,
            "mirrorLagMessages": self.mirror_lag_messages,
            "notes": dict(self.notes),
        }


def _row(name: str, counts: RegionTally) -> str:
    return (
        f"  {name:<8}{counts.accepted:>9}{counts.completed:>10}{counts.failed:>8}"
        f"{counts.reprocessed:>12}{counts.duplicates:>11}{counts.lost:>6}"
    )


def render(report: ScenarioReport) -> str:
    """A few lines a person reads at the end of a run."""
    lines = [
        f"{report.scenario} ({report.duration_seconds:.1f} s)",
        f"  {'region':<8}{'accepted':>9}{'completed':>10}{'failed':>8}{'reprocessed':>12}"
        f"{'duplicates':>11}{'lost':>6}",
    ]
    lines += [_row(name, counts) for name, counts in report.tally.regions.items()]
    lines.append(_row("total", report.tally.total))
    if report.tally.completed_by:
        done = ", ".join(f"{region}={count}" for region, count in report.tally.completed_by.items())
        lines.append(f"  completed by: {done}")
    if report.failover_seconds:
        lines.append(
            "  failover: "
            + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in report.failover_seconds.items())
        )
    if report.rpo_jobs is not None or report.rpo_seconds is not None:
        lag = []
        if report.mirror_lag_messages is not None:
            lag.append(f"{report.mirror_lag_messages} jobs")
        if report.rpo_seconds is not None:
            lag.append(f"{report.rpo_seconds:.2f} s")
        lines.append(f"  RPO: {report.rpo_jobs} jobs lost, mirror lag {' / '.join(lag) or 'not reported'}")
    lines += [f"  {key}: {value}" for key, value in report.notes.items()]
    return "\n".join(lines)


def write_reports(reports: Sequence[ScenarioReport], path: Path) -> None:
    """All reports of a run as one JSON document."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"scenarios": [r.as_json() for r in reports]}, indent=2) + "\n")
