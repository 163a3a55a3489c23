"""The end-of-run summary of a bulk submission: counted from the outcomes, then drawn with rich.

Counting is a pure function so tests can check the numbers; drawing is a thin layer over it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from rich.console import Group
from rich.table import Table

from pixelmesh.client.aio import SubmitOutcome

EXAMPLES_PER_REASON = 3


@dataclass(frozen=True, slots=True)
class Failure:
    source: str
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Summary:
    submitted: int
    done: int
    failed: int
    seconds: float
    outputs: int
    reasons: dict[str, int] = field(default_factory=dict)
    failures: tuple[Failure, ...] = ()

    @property
    def images_per_second(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "submitted": self.submitted,
            "done": self.done,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "imagesPerSecond": round(self.images_per_second, 2),
            "outputs": self.outputs,
            "reasons": self.reasons,
            "failures": [
                {"source": f.source, "reason": f.reason, "message": f.message} for f in self.failures
            ],
        }


def summarise(outcomes: Iterable[SubmitOutcome], seconds: float) -> Summary:
    done = failed = outputs = 0
    reasons: Counter[str] = Counter()
    failures: list[Failure] = []
    for outcome in outcomes:
        if outcome.succeeded:
            done += 1
            outputs += len(outcome.files)
            continue
        failed += 1
        reasons[outcome.reason] += 1
        failures.append(Failure(outcome.source, outcome.reason, outcome.message))
    return Summary(
        submitted=done + failed,
        done=done,
        failed=failed,
        seconds=seconds,
        outputs=outputs,
        reasons=dict(reasons.most_common()),
        failures=tuple(failures),
    )


def render(summary: Summary) -> Group:
    totals = Table(title="Summary", show_header=False, title_justify="left")
    totals.add_column(style="bold")
    totals.add_column(justify="right")
    totals.add_row("Submitted", str(summary.submitted))
    totals.add_row("Done", f"[green]{summary.done}[/green]")
    totals.add_row("Failed", f"[red]{summary.failed}[/red]" if summary.failed else "0")
    totals.add_row("Outputs written", str(summary.outputs))
    totals.add_row("Time", f"{summary.seconds:.1f} s")
    totals.add_row("Images/s", f"{summary.images_per_second:.1f}")
    parts: list[Table] = [totals]
    if summary.failures:
        reasons = Table(title="Failures", title_justify="left")
        reasons.add_column("Reason", style="red")
        reasons.add_column("Count", justify="right")
        reasons.add_column("Examples")
        for reason, count in summary.reasons.items():
            examples = [f for f in summary.failures if f.reason == reason][:EXAMPLES_PER_REASON]
            reasons.add_row(reason, str(count), "\n".join(f"{f.source}: {f.message}" for f in examples))
        parts.append(reasons)
    return Group(*parts)
