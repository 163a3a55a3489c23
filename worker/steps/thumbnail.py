"""Make a thumbnail, decoding big sources at reduced size (shrink-on-load).

`crop` none/centre/attention/entropy map straight onto libvips' thumbnail. A `gravity` or a
`focalPoint` first scales the image to cover the box (a shrink-on-load thumbnail to an exact
size computed from the header), then cuts the box out at that side or around that point.
"""

from __future__ import annotations

import math

from pixelmesh.api.pipeline import Crop, Thumbnail
from pixelmesh.worker.geometry import focal_offset, gravity_offset
from pixelmesh.worker.steps.context import UNBOUNDED, Context, box_scale
from pixelmesh.worker.steps.step import StepDef


def thumbnail(context: Context, operation: Thumbnail) -> None:
    """Thumbnail per `operation` (see the module notes)."""
    size = "both" if operation.enlarge else "down"
    if operation.gravity is None and operation.focal_point is None:
        context.thumbnail(
            operation.width,
            height=operation.height or UNBOUNDED,
            size=size,
            crop=operation.crop.value if operation.crop is not Crop.NONE else "none",
        )
        return
    assert operation.height is not None  # the model requires it with a gravity or focal point
    box = (operation.width, operation.height)
    cover = cover_size(context.displayed_size(), box, enlarge=operation.enlarge)
    image = context.thumbnail(cover[0], height=cover[1], size="force")
    cut = (min(box[0], image.width), min(box[1], image.height))
    if operation.focal_point is not None:
        left, top = focal_offset(
            (operation.focal_point.x, operation.focal_point.y), (image.width, image.height), cut
        )
    else:
        assert operation.gravity is not None
        left, top = gravity_offset(operation.gravity, (image.width, image.height), cut)
    context.image = image.extract_area(left, top, cut[0], cut[1])


def cover_size(source: tuple[int, int], box: tuple[int, int], *, enlarge: bool) -> tuple[int, int]:
    """The size that keeps `source`'s aspect ratio and covers `box` (at most `source` unless `enlarge`)."""
    (source_w, source_h), (box_w, box_h) = source, box
    scale = max(box_w / source_w, box_h / source_h)
    if not enlarge:
        scale = min(scale, 1.0)
    # Round up so the box is covered even where the scale lands between two pixels.
    return max(1, min(math.ceil(source_w * scale), UNBOUNDED)), max(
        1, min(math.ceil(source_h * scale), UNBOUNDED)
    )


def load_scale(operation: Thumbnail, source: tuple[int, int]) -> float:
    """The fraction of the source size this thumbnail needs: the box's, covered when it crops."""
    return box_scale(
        source,
        (operation.width, operation.height),
        cover=operation.crop is not Crop.NONE
        or operation.gravity is not None
        or operation.focal_point is not None,
        enlarge=operation.enlarge,
    )


STEP = StepDef(name="thumbnail", model=Thumbnail, run=thumbnail, shrinks_on_load=True, load_scale=load_scale)
