"""Colours from the spec (`#rrggbb`, `#rrggbbaa`) as libvips ink for a given image.

libvips wants a background as one value per band, in the image's own numeric range: a grey image
takes one value (plus alpha), a 16-bit image takes values up to 65535. Specs speak sRGB hex, so the
conversion depends on the image and lives here once.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyvips

_GREY_SPACES = frozenset({"b-w", "grey16"})
_SIXTEEN_BIT = frozenset({"ushort", "short"})


@dataclass(frozen=True, slots=True)
class Rgba:
    """An 8-bit sRGB colour with alpha."""

    red: int
    green: int
    blue: int
    alpha: int = 255

    @property
    def opaque(self) -> bool:
        """True when the alpha is full."""
        return self.alpha == 255

    @property
    def luma(self) -> int:
        """The grey level of this colour (Rec. 709 weights)."""
        return round(0.2126 * self.red + 0.7152 * self.green + 0.0722 * self.blue)


def parse_hex(colour: str) -> Rgba:
    """Parse `#rrggbb` or `#rrggbbaa` (the API validates the pattern)."""
    digits = colour.removeprefix("#")
    if len(digits) not in (6, 8):
        raise ValueError(f"colour {colour!r} is not #rrggbb or #rrggbbaa")
    values = [int(digits[i : i + 2], 16) for i in range(0, len(digits), 2)]
    return Rgba(*values)


def max_value(image: pyvips.Image) -> float:
    """The value of full intensity (and of opaque alpha) for the image's band format."""
    return 65535.0 if image.format in _SIXTEEN_BIT else 255.0


def is_grey(image: pyvips.Image) -> bool:
    """True when the colour part of the image is a single grey band."""
    colour_bands = image.bands - 1 if image.hasalpha() else image.bands
    return colour_bands == 1 or image.interpretation in _GREY_SPACES


def ink(image: pyvips.Image, colour: Rgba, *, with_alpha: bool | None = None) -> list[float]:
    """`colour` as one value per band of `image` (alpha included when the image has one).

    `with_alpha` overrides whether an alpha value is appended (flatten wants colour bands only).
    """
    scale = max_value(image) / 255.0
    values = [float(colour.luma)] if is_grey(image) else [float(colour.red), colour.green, colour.blue]
    include_alpha = image.hasalpha() if with_alpha is None else with_alpha
    if include_alpha:
        values.append(float(colour.alpha))
    return [v * scale for v in values]


def with_alpha_for(image: pyvips.Image, colour: Rgba) -> pyvips.Image:
    """`image` with an opaque alpha band added when `colour` is (partly) transparent and it has none."""
    if colour.opaque or image.hasalpha():
        return image
    return image.addalpha()


def as_srgb_for_ink(image: pyvips.Image) -> pyvips.Image:
    """Bring CMYK or Lab pixels to sRGB, so an sRGB hex colour means what it says."""
    if image.interpretation in {"cmyk", "lab", "labs", "lch", "cmc", "xyz", "yxy", "hsv", "scrgb"}:
        return image.colourspace("srgb")
    return image
