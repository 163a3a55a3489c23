"""Mirror top to bottom (reads the image bottom first, so it needs random access)."""

from __future__ import annotations

from pixelmesh.api.pipeline import Flip
from pixelmesh.worker.steps.context import Context
from pixelmesh.worker.steps.step import StepDef


def flip(context: Context, _operation: Flip) -> None:
    """Mirror vertically."""
    context.image = context.random_access_image().flipver()


STEP = StepDef(name="flip", model=Flip, run=flip)
