"""Composite the alpha channel onto a background colour (JPEG has no alpha).

The encoder also flattens, onto white, before saving a format without alpha; this step chooses
the colour and the place in the pipeline.
"""

from __future__ import annotations

import pyvips

from pixelmesh.api.pipeline import Flatten
from pixelmesh.worker.colour import Rgba, as_srgb_for_ink, ink, max_value, parse_hex
from pixelmesh.worker.steps.context import Context
from pixelmesh.worker.steps.step import StepDef

WHITE = Rgba(255, 255, 255)


def flatten(context: Context, operation: Flatten) -> None:
    """Remove alpha by compositing onto `operation.background`."""
    context.image = flatten_onto(context.image, parse_hex(operation.background))


def flatten_onto(image: pyvips.Image, background: Rgba) -> pyvips.Image:
    """`image` without alpha, composited onto `background` (returned as is when opaque)."""
    if not image.hasalpha():
        return image
    image = as_srgb_for_ink(image)
    return image.flatten(background=ink(image, background, with_alpha=False), max_alpha=max_value(image))


STEP = StepDef(name="flatten", model=Flatten, run=flatten)
