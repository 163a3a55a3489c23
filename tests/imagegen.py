"""Test images, made by pyvips: deterministic bytes for every test that needs a source.

Good sources look like photos (gradients, shapes, texture), so crops, attention and encoders have
something to work on, and carry markers at known places so a test can check geometry by colour:
a red square in the top-left corner, a blue one in the bottom-right, and a skin-toned, detailed
"subject" disc right of centre. `photo_jpeg(..., orientation=N)` stores the pixels so that the
*displayed* image (after applying EXIF orientation N) has exactly that layout: an autorotated
result always looks like the unrotated one.

The bad-input corpus (truncated, empty, text, a PNG bomb, SVG, many-page TIFF, oversized) is made
here too, so every tier of the suite refuses the same hostile files.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

import pyvips

RED: tuple[int, int, int] = (255, 0, 0)
"""Colour of the top-left marker square."""
BLUE: tuple[int, int, int] = (0, 0, 255)
"""Colour of the bottom-right marker square."""
SKIN: tuple[int, int, int] = (224, 172, 140)
"""Base colour of the subject disc."""
PNG_ALPHA_COLOUR: tuple[int, int, int] = (30, 120, 200)
"""Colour of the opaque half of `png_with_alpha`."""
COPYRIGHT = "(c) PixelMesh Test Studio"
ARTIST = "A. Tester"


def marker_size(width: int, height: int) -> int:
    """Side of the red and blue corner squares."""
    return max(2, min(width, height) // 8)


def subject_centre(width: int, height: int) -> tuple[int, int]:
    """Where the subject disc sits (right of centre, a little above the middle)."""
    return (width * 3 // 4, height * 2 // 5)


def subject_radius(width: int, height: int) -> int:
    """Radius of the subject disc."""
    return max(2, min(width, height) // 6)


def photo_image(width: int, height: int) -> pyvips.Image:
    """The displayed content of `photo_jpeg`, as an sRGB uchar image (not encoded)."""
    x = pyvips.Image.xyz(width, height)
    xs = x[0]
    ys = x[1]
    red = xs * (160.0 / max(1, width - 1)) + 40
    green = ys * (160.0 / max(1, height - 1)) + 40
    blue = (xs + ys) * (80.0 / max(1, width + height - 2)) + 80
    base = red.bandjoin([green, blue])
    noise = pyvips.Image.gaussnoise(width, height, sigma=6.0, mean=0.0, seed=42)
    image = (base + noise).cast("uchar")

    cx, cy = subject_centre(width, height)
    r = subject_radius(width, height)
    dist = ((xs - cx) ** 2 + (ys - cy) ** 2) ** 0.5
    # Concentric rings give the subject the most detail and edges in the frame.
    rings = ((dist / max(1.0, r / 4.0)).cast("int") & 1).ifthenelse(36, 0)
    subject = (pyvips.Image.black(width, height, bands=3) + list(SKIN) - rings.bandjoin([rings, rings])).cast(
        "uchar"
    )
    image = (dist < r).ifthenelse(subject, image)

    s = marker_size(width, height)
    image = image.draw_rect(list(RED), 0, 0, s, s, fill=True)
    image = image.draw_rect(list(BLUE), width - s, height - s, s, s, fill=True)
    return image.copy(interpretation="srgb")


def _stored_for_orientation(displayed: pyvips.Image, orientation: int) -> pyvips.Image:
    """The stored pixels that EXIF `orientation` turns into `displayed` (the inverse transform)."""
    match orientation:
        case 1:
            return displayed
        case 2:
            return displayed.fliphor()
        case 3:
            return displayed.rot180()
        case 4:
            return displayed.flipver()
        case 5:
            return displayed.rot270().flipver()
        case 6:
            return displayed.rot270()
        case 7:
            return displayed.rot90().flipver()
        case 8:
            return displayed.rot90()
        case _:
            raise ValueError(f"EXIF orientation is 1-8, not {orientation}")


def photo_jpeg(width: int, height: int, *, orientation: int | None = None, quality: int = 90) -> bytes:
    """A photo-like JPEG whose displayed size is `width` x `height`.

    With `orientation`, the pixels are stored turned and the EXIF tag says how to turn them back.
    """
    image = photo_image(width, height)
    if orientation is not None:
        image = _stored_for_orientation(image, orientation).copy()
        image.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    return bytes(image.jpegsave_buffer(Q=quality))


def photo_png(width: int, height: int) -> bytes:
    """The photo content as an opaque RGB PNG."""
    return bytes(photo_image(width, height).pngsave_buffer(compression=1))


def photo_with_metadata_jpeg(width: int, height: int) -> bytes:
    """A photo JPEG carrying an sRGB ICC profile, EXIF copyright and artist, and an XMP packet."""
    image = photo_image(width, height).copy()
    image.set_type(pyvips.GValue.blob_type, "icc-profile-data", srgb_profile())
    image.set_type(pyvips.GValue.gstr_type, "exif-ifd0-Copyright", COPYRIGHT)
    image.set_type(pyvips.GValue.gstr_type, "exif-ifd0-Artist", ARTIST)
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF></rdf:RDF></x:xmpmeta>'
    image.set_type(pyvips.GValue.blob_type, "xmp-data", xmp)
    return bytes(image.jpegsave_buffer(Q=90))


def srgb_profile() -> bytes:
    """libvips' built-in sRGB ICC profile."""
    return bytes(pyvips.Operation.call("profile_load", "srgb"))


def cmyk_jpeg(width: int, height: int) -> bytes:
    """The photo content as a CMYK JPEG (four bands, libvips' built-in CMYK profile attached)."""
    cmyk = photo_image(width, height).icc_export(output_profile="cmyk")
    return bytes(cmyk.jpegsave_buffer(Q=90))


def png_with_alpha(width: int, height: int) -> bytes:
    """An RGBA PNG: the left half opaque `PNG_ALPHA_COLOUR`, the right half fully transparent."""
    colour = pyvips.Image.black(width, height, bands=3) + list(PNG_ALPHA_COLOUR)
    alpha = (pyvips.Image.xyz(width, height)[0] < width // 2).ifthenelse(255, 0)
    image = colour.bandjoin(alpha).cast("uchar").copy(interpretation="srgb")
    return bytes(image.pngsave_buffer(compression=1))


def solid_png(width: int, height: int, colour: Sequence[int] = (128, 128, 128)) -> bytes:
    """A flat PNG of one colour (3 values: RGB, 4 values: RGBA)."""
    image = (pyvips.Image.black(width, height, bands=len(colour)) + list(colour)).cast("uchar")
    return bytes(image.copy(interpretation="srgb").pngsave_buffer(compression=1))


def encode_as(data: bytes, suffix: str, **options: object) -> bytes:
    """Re-encode an image (e.g. `photo_jpeg(...)`) with a libvips saver suffix such as `.webp`."""
    image = pyvips.Image.new_from_buffer(data, "")
    return bytes(image.write_to_buffer(suffix, **options))


def animated_gif(width: int, height: int, frames: int) -> bytes:
    """An animated GIF with `frames` frames of different brightness."""
    return bytes(
        _page_strip(width, height, [[40 * i % 256, 80, 160] for i in range(frames)]).gifsave_buffer()
    )


def _page_strip(width: int, height: int, colours: Sequence[Sequence[int]]) -> pyvips.Image:
    """One flat page per colour, stacked top to bottom as libvips holds a multi-page image."""
    pages = [
        pyvips.Image.black(width, height).new_from_image(list(colour)).cast("uchar") for colour in colours
    ]
    strip = pyvips.Image.arrayjoin(pages, across=1).copy(interpretation="srgb")
    strip.set_type(pyvips.GValue.gint_type, "page-height", height)
    return strip


# The bad-input corpus.


def truncated_jpeg() -> bytes:
    """A photo JPEG cut off half way through its entropy-coded data."""
    data = photo_jpeg(256, 192)
    return data[: len(data) // 2]


def zero_bytes() -> bytes:
    """An empty upload."""
    return b""


def text_named_jpg() -> bytes:
    """Plain text, as uploaded under the name `photo.jpg`."""
    return b"This is not a picture, it is a shopping list: eggs, milk, bread.\n" * 4


def png_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A few-KB PNG that declares `width` x `height` 8-bit grey pixels (a decompression bomb).

    Only the first rows are present: a reader that trusts the header and allocates the declared
    size is the victim. The file's chunks and CRCs are valid.
    """
    rows = min(height, 64)
    raw = (b"\x00" + b"\x00" * width) * rows
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def svg_image() -> bytes:
    """A small, valid SVG document (a vector format refused by default)."""
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="48">'
        b'<rect width="64" height="48" fill="#ff0000"/><circle cx="32" cy="24" r="12" fill="#0000ff"/>'
        b"</svg>\n"
    )


def multipage_tiff(pages: int, width: int = 16, height: int = 16) -> bytes:
    """A TIFF with `pages` small pages."""
    return bytes(_page_strip(width, height, [[i % 256, 64, 128] for i in range(pages)]).tiffsave_buffer())


def oversized_jpeg(max_bytes: int) -> bytes:
    """A valid JPEG strictly larger than `max_bytes`."""
    side = 64
    while True:
        noise = pyvips.Image.gaussnoise(side, side, sigma=80.0, mean=128.0, seed=7)
        image = noise.bandjoin([noise.rot180(), noise.fliphor()]).cast("uchar").copy(interpretation="srgb")
        data = bytes(image.jpegsave_buffer(Q=100))
        if len(data) > max_bytes:
            return data
        side *= 2
