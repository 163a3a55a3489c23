"""Add borders of a background colour; a (partly) transparent colour adds an alpha band."""

from __future__ import annotations

from pixelmesh.api.pipeline import Pad
from pixelmesh.worker.colour import as_srgb_for_ink, ink, parse_hex, with_alpha_for
from pixelmesh.worker.steps.context import Context
from pixelmesh.worker.steps.step import StepDef


def pad(context: Context, operation: Pad) -> None:
    """Extend each side by its number of pixels."""
    if not (operation.top or operation.right or operation.bottom or operation.left):
        return
    colour = parse_hex(operation.background)
    image = with_alpha_for(as_srgb_for_ink(context.image), colour)
    context.image = image.embed(
        operation.left,
        operation.top,
        image.width + operation.left + operation.right,
        image.height + operation.top + operation.bottom,
        extend="background",
        background=ink(image, colour),
    )


STEP = StepDef(name="pad", model=Pad, run=pad)
