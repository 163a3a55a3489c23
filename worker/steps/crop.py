"""Cut out an explicit box; a box that reaches past the edges is clipped to the image."""

from __future__ import annotations

from pixelmesh.api.messages import FailureReason
from pixelmesh.api.pipeline import CropBox
from pixelmesh.worker.errors import PermanentError
from pixelmesh.worker.steps.context import Context
from pixelmesh.worker.steps.step import StepDef


def crop(context: Context, operation: CropBox) -> None:
    """Keep the part of the image inside the box."""
    image = context.image
    if operation.left >= image.width or operation.top >= image.height:
        raise PermanentError(
            FailureReason.PROCESSING_FAILED,
            f"The crop box at ({operation.left}, {operation.top}) lies outside the "
            f"{image.width}x{image.height} image.",
        )
    width = min(operation.width, image.width - operation.left)
    height = min(operation.height, image.height - operation.top)
    context.image = image.extract_area(operation.left, operation.top, width, height)


STEP = StepDef(name="crop", model=CropBox, run=crop)
