"""Rotate clockwise by any angle.

Multiples of 90 degrees are exact pixel moves. Other angles resample (libvips' affine
premultiplies alpha itself, so transparent edges do not bleed colour) and fill the uncovered
corners with the background; a (partly) transparent background gives the image an alpha band.
Rotation reads out of order.
"""

from __future__ import annotations

from pixelmesh.api.pipeline import Rotate
from pixelmesh.worker.colour import as_srgb_for_ink, ink, parse_hex, with_alpha_for
from pixelmesh.worker.steps.context import Context
from pixelmesh.worker.steps.step import StepDef

_RIGHT_ANGLES = {90: "d90", 180: "d180", 270: "d270"}


def rotate(context: Context, operation: Rotate) -> None:
    """Rotate by `operation.angle` degrees clockwise."""
    angle = operation.angle % 360.0
    if angle == 0.0:
        return
    image = context.random_access_image()
    if angle.is_integer() and int(angle) in _RIGHT_ANGLES:
        context.image = image.rot(_RIGHT_ANGLES[int(angle)])
        return
    colour = parse_hex(operation.background)
    image = with_alpha_for(as_srgb_for_ink(image), colour)
    context.image = image.rotate(angle, background=ink(image, colour))


STEP = StepDef(name="rotate", model=Rotate, run=rotate)
