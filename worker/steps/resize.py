"""Resize to a width and/or height, with the fit modes of an image CDN.

Every fit is a libvips thumbnail of the image so far, which keeps the aspect ratio exactly,
resamples with premultiplied alpha, and — as the first pixel step — decodes the source at reduced
size (shrink-on-load). `contain` then pads to the exact box. Without `enlarge`, a source smaller
than the box keeps its size (`contain` still pads it to the box).
"""

from __future__ import annotations

from pixelmesh.api.pipeline import Fit, Resize
from pixelmesh.worker.colour import as_srgb_for_ink, ink, parse_hex, with_alpha_for
from pixelmesh.worker.steps.context import UNBOUNDED, Context, box_scale
from pixelmesh.worker.steps.step import StepDef


def resize(context: Context, operation: Resize) -> None:
    """Resize per `operation.fit`."""
    size = "both" if operation.enlarge else "down"
    width = operation.width or UNBOUNDED
    height = operation.height or UNBOUNDED
    match operation.fit:
        case Fit.INSIDE:
            context.thumbnail(width, height=height, size=size)
        case Fit.COVER:
            context.thumbnail(width, height=height, size=size, crop="centre")
        case Fit.FILL:
            source_w, source_h = context.displayed_size()
            if not operation.enlarge:
                width, height = min(width, source_w), min(height, source_h)
            context.thumbnail(width, height=height, size="force")
        case Fit.CONTAIN:
            context.thumbnail(width, height=height, size=size)
            _pad_to_box(context, width, height, operation.background)


def _pad_to_box(context: Context, width: int, height: int, background: str) -> None:
    image = context.image
    if (image.width, image.height) == (width, height):
        return
    colour = parse_hex(background)
    image = with_alpha_for(as_srgb_for_ink(image), colour)
    left, top = (width - image.width) // 2, (height - image.height) // 2
    context.image = image.embed(left, top, width, height, extend="background", background=ink(image, colour))


def load_scale(operation: Resize, source: tuple[int, int]) -> float:
    """The fraction of the source size this resize needs: the box's, covered by `cover` and `fill`."""
    return box_scale(
        source,
        (operation.width, operation.height),
        cover=operation.fit in (Fit.COVER, Fit.FILL),
        enlarge=operation.enlarge,
    )


STEP = StepDef(name="resize", model=Resize, run=resize, shrinks_on_load=True, load_scale=load_scale)
