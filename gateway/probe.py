"""Refusing bad sources at the door, from their header alone.

A decompression bomb (a few hundred kilobytes that decode to gigapixels) or a format the pipeline
does not allow should cost the gateway microseconds and no job, not a worker's memory. libvips
sniffs the format from the first bytes (no parsing), then reads only the header for the
dimensions and page count; no pixel is decoded. Workers check again (they must: jobs may arrive by
other paths), so this is an early answer, not the only guard.

Caveat: a file whose header is fine but whose pixels are corrupt passes here and fails in the
worker with `corrupt`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyvips
from pyvips import ffi, vips_lib

from pixelmesh.api.http import ProblemCode
from pixelmesh.api.pipeline import InputFormat, InputLimits

# libvips loader class names (VipsForeignLoad<Name>Buffer) by the format family they decode.
_LOADER_FAMILIES: tuple[tuple[str, tuple[InputFormat, ...]], ...] = (
    ("jpeg", (InputFormat.JPEG,)),
    ("png", (InputFormat.PNG,)),
    ("webp", (InputFormat.WEBP,)),
    ("heif", (InputFormat.AVIF, InputFormat.HEIF)),
    ("gif", (InputFormat.GIF,)),
    ("tiff", (InputFormat.TIFF,)),
    ("svg", (InputFormat.SVG,)),
)


@dataclass(frozen=True, slots=True)
class SourceHeader:
    format: InputFormat
    width: int
    height: int
    frames: int


@dataclass(frozen=True, slots=True)
class Refusal:
    code: ProblemCode
    detail: str


def sniff_families(data: bytes) -> tuple[InputFormat, ...]:
    """The formats the first bytes could be (empty: nothing libvips would load)."""
    pointer = vips_lib.vips_foreign_find_load_buffer(data, len(data))
    if pointer == ffi.NULL:
        return ()
    loader = ffi.string(pointer).decode().lower()
    for marker, formats in _LOADER_FAMILIES:
        if marker in loader:
            return formats
    return ()


def read_header(data: bytes, family: tuple[InputFormat, ...]) -> SourceHeader:
    """The header of a source whose format family is known; pyvips.Error if it is unreadable."""
    image = pyvips.Image.new_from_buffer(data, "", access="sequential")
    frames = int(image.get("n-pages")) if image.get_typeof("n-pages") else 1
    fmt = family[0]
    if family == (InputFormat.AVIF, InputFormat.HEIF):
        compression = image.get("heif-compression") if image.get_typeof("heif-compression") else ""
        fmt = InputFormat.AVIF if compression == "av1" else InputFormat.HEIF
    # A multi-page loader reports the first page's height unless asked for all pages.
    height = int(image.get("page-height")) if image.get_typeof("page-height") else image.height
    return SourceHeader(format=fmt, width=image.width, height=height, frames=max(frames, 1))


def check_source(data: bytes, limits: InputLimits) -> Refusal | None:
    """Why the pipeline would refuse `data`, or None if its header is within `limits`."""
    if len(data) > limits.max_bytes:
        return Refusal(
            ProblemCode.TOO_LARGE, f"the source is {len(data)} bytes, the limit is {limits.max_bytes}"
        )
    family = sniff_families(data)
    allowed = set(limits.formats)
    if not family:
        return Refusal(
            ProblemCode.UNSUPPORTED_FORMAT, "the source is not in an image format this pipeline reads"
        )
    if not allowed.intersection(family):
        names = "/".join(f.value for f in family)
        return Refusal(ProblemCode.UNSUPPORTED_FORMAT, f"{names} sources are not accepted by this pipeline")
    try:
        header = read_header(data, family)
    except pyvips.Error as error:
        return Refusal(ProblemCode.CORRUPT, f"the image header could not be read: {str(error).strip()}")
    if header.format not in allowed:
        return Refusal(
            ProblemCode.UNSUPPORTED_FORMAT, f"{header.format.value} sources are not accepted by this pipeline"
        )
    if header.frames > limits.max_frames:
        return Refusal(
            ProblemCode.TOO_MANY_FRAMES,
            f"the source has {header.frames} frames, the limit is {limits.max_frames}",
        )
    pixels = header.width * header.height * header.frames
    if pixels > limits.max_pixels:
        return Refusal(
            ProblemCode.TOO_MANY_PIXELS,
            f"the source is {header.width}x{header.height}x{header.frames} = {pixels} pixels, "
            f"the limit is {limits.max_pixels}",
        )
    return None
