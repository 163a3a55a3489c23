"""Unsharp mask on the lightness channel (libvips `sharpen`; colours and alpha are kept)."""

from __future__ import annotations

from pixelmesh.api.pipeline import Sharpen
from pixelmesh.worker.steps.context import Context
from pixelmesh.worker.steps.step import StepDef


def sharpen(context: Context, operation: Sharpen) -> None:
    """Sharpen with a mask of `operation.sigma` pixels and strength `operation.amount`."""
    context.image = context.image.sharpen(sigma=operation.sigma, m2=operation.amount)


STEP = StepDef(name="sharpen", model=Sharpen, run=sharpen)
