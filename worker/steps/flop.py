"""Mirror left to right (line by line, so it streams)."""

from __future__ import annotations

from pixelmesh.api.pipeline import Flop
from pixelmesh.worker.steps.context import Context
from pixelmesh.worker.steps.step import StepDef


def flop(context: Context, _operation: Flop) -> None:
    """Mirror horizontally."""
    context.image = context.image.fliphor()


STEP = StepDef(name="flop", model=Flop, run=flop)
