"""Turn the image upright from its EXIF orientation, then drop the tag.

Before decoding, this only asks the decode (or the shrink-on-load thumbnail) to orient the
pixels, which keeps a following thumbnail on the fast path. After decoding, libvips' `autorot`
applies the tag; turning by 90 or 180 degrees reads out of order, so it needs random access.
"""

from __future__ import annotations

from pixelmesh.api.pipeline import Autorotate
from pixelmesh.worker.steps.context import Context
from pixelmesh.worker.steps.step import StepDef

_UPRIGHT = 1


def autorotate(context: Context, _operation: Autorotate) -> None:
    """Apply the EXIF orientation (now, or at decode time if nothing is decoded yet)."""
    if not context.decoded:
        context.orient = True
        return
    image = context.image
    orientation = image.get("orientation") if image.get_typeof("orientation") else _UPRIGHT
    if orientation == _UPRIGHT:
        return
    context.image = context.random_access_image().autorot()


STEP = StepDef(name="autorotate", model=Autorotate, run=autorotate, needs_pixels=False)
