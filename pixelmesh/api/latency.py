"""Job latency as workers count it and a traffic shift's guard reads it: a fixed histogram.

A worker counts each job it served in the bucket of its latency, from the moment its region's
stream stored the job (the accept) to its outcome, so queueing counts as much as processing: a
region short of workers breaches the guard like a slow one. It reports the counts as running
totals with its other totals; the operator sums every worker's counts, takes the growth since its
last pass and reads a quantile from it. The bounds are fixed so that any two workers' counts add
up, and a quantile is reported as the upper bound of its bucket (the pessimistic side).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

LATENCY_BOUNDS_SECONDS: tuple[float, ...] = (
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
)
"""Upper bounds of the buckets; one more bucket counts what is above the last."""
BUCKETS = len(LATENCY_BOUNDS_SECONDS) + 1


def bucket_of(seconds: float) -> int:
    """The index of the bucket counting a job of `seconds` (bounds are inclusive, as Prometheus')."""
    return bisect.bisect_left(LATENCY_BOUNDS_SECONDS, max(seconds, 0.0))


def quantile(counts: Sequence[int], q: float) -> float | None:
    """The upper bound of the bucket holding quantile `q` of `counts`; None when nothing was
    counted. Above the last bound it is infinite: all we know is that it is over that bound."""
    if not 0.0 < q <= 1.0:
        raise ValueError(f"q must be in (0, 1], got {q}")
    total = sum(counts)
    if total <= 0:
        return None
    rank = math.ceil(q * total)
    seen = 0
    for index, count in enumerate(counts):
        seen += count
        if seen >= rank:
            return LATENCY_BOUNDS_SECONDS[index] if index < len(LATENCY_BOUNDS_SECONDS) else math.inf
    return math.inf


def growth(now: Sequence[int], before: Sequence[int]) -> list[int] | None:
    """Counts added between two readings of the same totals; None when they do not line up (a
    worker restarted and began again, or reports another layout)."""
    if len(now) != BUCKETS or len(before) != BUCKETS:
        return None
    added = [a - b for a, b in zip(now, before, strict=True)]
    return added if all(n >= 0 for n in added) else None


def add(counts: Sequence[Sequence[int]]) -> list[int]:
    """Bucket-wise sum of several workers' counts; those of another layout are left out."""
    total = [0] * BUCKETS
    for one in counts:
        if len(one) == BUCKETS:
            total = [t + n for t, n in zip(total, one, strict=True)]
    return total
