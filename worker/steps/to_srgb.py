"""Convert to sRGB: CMYK, wide-gamut (an embedded profile), greyscale, 16-bit.

With an embedded ICC profile, the profile is honoured (`icc_transform` to sRGB); CMYK without one
goes through libvips' built-in CMYK profile; everything else through `colourspace`. Alpha is kept.
The result is 8-bit.
"""

from __future__ import annotations

import pyvips

from pixelmesh.api.pipeline import ToSrgb
from pixelmesh.worker.steps.context import Context
from pixelmesh.worker.steps.step import StepDef

_SRGB_ALREADY = frozenset({"srgb"})


def to_srgb(context: Context, _operation: ToSrgb) -> None:
    """Convert the image to 8-bit sRGB."""
    context.image = convert_to_srgb(context.image)


def convert_to_srgb(image: pyvips.Image) -> pyvips.Image:
    """`image` as 8-bit sRGB, honouring an embedded ICC profile."""
    if image.get_typeof("icc-profile-data"):
        fallback = "cmyk" if image.interpretation == "cmyk" else "srgb"
        return image.icc_transform("srgb", embedded=True, input_profile=fallback, depth=8)
    if image.interpretation == "cmyk":
        return image.icc_transform("srgb", input_profile="cmyk", depth=8)
    if image.interpretation in _SRGB_ALREADY and image.format == "uchar":
        return image
    return image.colourspace("srgb").cast("uchar")


STEP = StepDef(name="toSrgb", model=ToSrgb, run=to_srgb)
