"""Overlay an image (base64 PNG or WebP) or a text, at a gravity, with a margin and an opacity.

The overlay comes from the pipeline spec, not the job, but it is still decoded with the same care
as a source: PNG or WebP only, 1 MiB and 4096x4096 at most, fail on decode errors. A decoded overlay
or a rendered text is cached (it is the same for every job of a pipeline; libvips images are
immutable, so threads share it safely). An overlay larger than the image minus its margins is
scaled down to fit. Compositing onto an image without alpha returns an image without alpha.
"""

from __future__ import annotations

import base64
import binascii
import functools

import pyvips

from pixelmesh.api.messages import FailureReason
from pixelmesh.api.pipeline import TextMark, Watermark
from pixelmesh.imaging import FAIL_ON, error_detail, find_loader
from pixelmesh.worker.colour import parse_hex
from pixelmesh.worker.errors import PermanentError
from pixelmesh.worker.geometry import gravity_offset
from pixelmesh.worker.steps.context import Context
from pixelmesh.worker.steps.step import StepDef

MAX_OVERLAY_BYTES = 1024 * 1024
MAX_OVERLAY_SIDE = 4096
_OVERLAY_LOADERS = frozenset({"VipsForeignLoadPngBuffer", "VipsForeignLoadWebpBuffer"})


def watermark(context: Context, operation: Watermark) -> None:
    """Composite the mark onto the image."""
    if operation.image is not None:
        mark = decoded_overlay(operation.image)
    else:
        assert operation.text is not None
        mark = rendered_text(operation.text)
    context.image = place_mark(context.image, mark, operation)


def place_mark(image: pyvips.Image, mark: pyvips.Image, operation: Watermark) -> pyvips.Image:
    """`image` with the RGBA `mark` composited at the operation's gravity, margin and opacity."""
    room_w = max(1, image.width - 2 * operation.margin)
    room_h = max(1, image.height - 2 * operation.margin)
    if mark.width > room_w or mark.height > room_h:
        mark = mark.thumbnail_image(room_w, height=room_h, size="down")
    if operation.opacity < 1.0:
        mark = mark[:3].bandjoin((mark[3] * operation.opacity).cast("uchar"))
    left, top = gravity_offset(
        operation.gravity, (image.width, image.height), (mark.width, mark.height), operation.margin
    )
    had_alpha = image.hasalpha()
    marked = image.composite2(mark, "over", x=left, y=top)
    if not had_alpha:
        marked = marked.extract_band(0, n=marked.bands - 1)
    return marked


@functools.lru_cache(maxsize=32)
def decoded_overlay(encoded: str) -> pyvips.Image:
    """The base64 overlay as an 8-bit sRGB RGBA image in memory; `PermanentError` if unusable."""
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as error:
        raise _bad_overlay("is not valid base64") from error
    if len(data) > MAX_OVERLAY_BYTES:
        raise _bad_overlay(f"is {len(data)} bytes, more than {MAX_OVERLAY_BYTES}")
    loader = find_loader(data)
    if loader not in _OVERLAY_LOADERS:
        raise _bad_overlay("is not a PNG or WebP image")
    try:
        overlay = pyvips.Operation.call(loader, data, fail_on=FAIL_ON)
        assert isinstance(overlay, pyvips.Image)
        if overlay.width > MAX_OVERLAY_SIDE or overlay.height > MAX_OVERLAY_SIDE:
            raise _bad_overlay(f"is {overlay.width}x{overlay.height}, larger than {MAX_OVERLAY_SIDE} a side")
        overlay = overlay.colourspace("srgb")
        if not overlay.hasalpha():
            overlay = overlay.addalpha()
        result = overlay.cast("uchar").copy_memory()
    except pyvips.Error as error:
        raise _bad_overlay(f"cannot be decoded: {error_detail(error)}") from error
    assert isinstance(result, pyvips.Image)
    return result


@functools.lru_cache(maxsize=32)
def rendered_text(mark: TextMark) -> pyvips.Image:
    """The text as an 8-bit sRGB RGBA image in its colour (coverage becomes alpha), in memory."""
    colour = parse_hex(mark.colour)
    try:
        coverage = pyvips.Image.text(mark.text, font=mark.font)
    except pyvips.Error as error:
        raise PermanentError(
            FailureReason.PROCESSING_FAILED, f"The watermark text cannot be rendered: {error_detail(error)}."
        ) from error
    rgb = (coverage.new_from_image([colour.red, colour.green, colour.blue])).copy(interpretation="srgb")
    alpha = (coverage * (colour.alpha / 255.0)).cast("uchar")
    result = rgb.cast("uchar").bandjoin(alpha).copy_memory()
    assert isinstance(result, pyvips.Image)
    return result


def _bad_overlay(problem: str) -> PermanentError:
    return PermanentError(FailureReason.PROCESSING_FAILED, f"The watermark image {problem}.")


STEP = StepDef(name="watermark", model=Watermark, run=watermark)
