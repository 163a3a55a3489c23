"""Gaussian blur, premultiplied when there is alpha so transparent pixels do not bleed colour."""

from __future__ import annotations

from pixelmesh.api.pipeline import Blur
from pixelmesh.worker.steps.context import Context
from pixelmesh.worker.steps.step import StepDef


def blur(context: Context, operation: Blur) -> None:
    """Blur with a Gaussian of `operation.sigma` pixels."""
    image = context.image
    if image.hasalpha():
        original_format = image.format
        image = image.premultiply().gaussblur(operation.sigma).unpremultiply().cast(original_format)
    else:
        image = image.gaussblur(operation.sigma)
    context.image = image


STEP = StepDef(name="blur", model=Blur, run=blur)
