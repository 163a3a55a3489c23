"""One region's decisions together: the pool's `capacity.maxWorkers` shared among its pipelines.

Each pipeline decides alone (`decide`); the region then has a budget. Pipelines scaled by KEDA are
members whose count the operator does not set: their current replicas are taken off the budget
first, since nothing here can shrink them. The rest is shared by priority, then fairly
(`share_capacity`), and every built-in decision is capped to its grant (`cap`), which says
`capacity-capped` where it bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from pixelmesh.operator.autoscaling.decision import CapacityClaim, Decision, cap, share_capacity


class Direction(StrEnum):
    """Which way a decision moves the count (a metrics label)."""

    UP = "up"
    DOWN = "down"
    HOLD = "hold"


def direction(current: int, desired: int) -> Direction:
    if desired > current:
        return Direction.UP
    if desired < current:
        return Direction.DOWN
    return Direction.HOLD


@dataclass(frozen=True, slots=True)
class PoolMember:
    """One pipeline's workers in the region."""

    key: str
    current: int
    """Replicas it has now."""
    decision: Decision | None
    """The built-in decision before capacity; None when the operator does not set its count (KEDA)."""
    minimum: int = 0
    priority: int = 0


def share_pool(capacity: int | None, members: Sequence[PoolMember]) -> dict[str, Decision]:
    """The built-in members' decisions, each capped to its share of `capacity` (None: unlimited)."""
    managed = [m for m in members if m.decision is not None]
    budget = None
    if capacity is not None:
        budget = max(0, capacity - sum(m.current for m in members if m.decision is None))
    claims = [
        CapacityClaim(m.key, m.decision.desired, minimum=m.minimum, priority=m.priority)
        for m in managed
        if m.decision is not None
    ]
    granted = share_capacity(budget, claims)
    return {m.key: cap(m.decision, granted[m.key]) for m in managed if m.decision is not None}
