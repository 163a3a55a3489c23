"""Convert to greyscale: one band of luminance (plus alpha, when there is one)."""

from __future__ import annotations

from pixelmesh.api.pipeline import Grayscale
from pixelmesh.worker.steps.context import Context
from pixelmesh.worker.steps.step import StepDef


def grayscale(context: Context, _operation: Grayscale) -> None:
    """Replace the colour bands by their luminance."""
    context.image = context.image.colourspace("b-w")


STEP = StepDef(name="grayscale", model=Grayscale, run=grayscale)
