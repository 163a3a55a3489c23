"""What a traffic shift's guards read: a region's error rate and p99 latency over one interval.

Workers report running totals (jobs served, of which failed, and served by latency bucket). The
operator sums a region's workers at every pass and differences the sums of two passes. A worker
that restarted begins its totals again, so a sum that went down is no reading; a worker that
stopped between two passes takes its totals with it, which reads as the same drop and is skipped
the same way (the next pass reads again).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pixelmesh.api import latency
from pixelmesh.operator.autoscaling.measure import WorkerTotals
from pixelmesh.operator.federation.traffic import GuardReading

P99 = 0.99


@dataclass(frozen=True, slots=True)
class GuardTotals:
    """The sum of a region's workers' running totals at one pass."""

    served: int
    failed: int
    latency_counts: tuple[int, ...]

    @classmethod
    def of(cls, workers: Sequence[WorkerTotals]) -> GuardTotals:
        return cls(
            served=sum(w.served for w in workers),
            failed=sum(w.failed for w in workers),
            latency_counts=tuple(latency.add([w.latency_counts for w in workers])),
        )

    def reading_since(self, before: GuardTotals) -> GuardReading | None:
        """The error rate and p99 latency of the jobs served since `before`; None when there were
        none or the totals went down (a worker restarted or left)."""
        served, failed = self.served - before.served, self.failed - before.failed
        if served <= 0 or failed < 0:
            return None
        added = latency.growth(self.latency_counts, before.latency_counts)
        p99 = latency.quantile(added, P99) if added is not None else None
        return GuardReading(error_rate=failed / served, p99_seconds=p99)
