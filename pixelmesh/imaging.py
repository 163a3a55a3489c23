"""Probe a source and check it against a pipeline's input limits before a pixel is decoded.

The gateway refuses bad sources at the door and the worker checks again (jobs may arrive by other
paths); both must give the same input the same verdict, so the check lives here. Hostile input is
normal at this scale, so the checks run cheapest first, and each refusal is an `SourceRefusedError` with
a `FailureReason` that each side maps to its own error type:

1. byte size against `maxBytes` (`too_large`; an empty source is `corrupt`);
2. the loader libvips *would* pick, sniffed from the magic bytes, against the allow-list
   (`unsupported_format`): a refused format's decoder never runs, not even its header parser;
3. a header-only load (libvips opens images lazily: width, height, page count and EXIF
   orientation are read, no pixels) for frames against `maxFrames` (`too_many_frames`) and
   width x height x frames against `maxPixels` (`too_many_pixels`). A PNG declaring 20000x20000 in
   a few KB is refused here in a millisecond.

Caveat: HEIF and AVIF share libvips' heif loader; they are told apart by the header's
`heif-compression` field, so that one header is parsed whenever either format is allowed. A source
whose header is fine but whose pixels are damaged passes here and fails only when decoded.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyvips

from pixelmesh.api.messages import FailureReason
from pixelmesh.api.pipeline import InputFormat, InputLimits

LOADER_FORMATS: dict[str, tuple[InputFormat, ...]] = {
    "VipsForeignLoadJpegBuffer": (InputFormat.JPEG,),
    "VipsForeignLoadPngBuffer": (InputFormat.PNG,),
    "VipsForeignLoadWebpBuffer": (InputFormat.WEBP,),
    "VipsForeignLoadHeifBuffer": (InputFormat.AVIF, InputFormat.HEIF),
    "VipsForeignLoadNsgifBuffer": (InputFormat.GIF,),
    "VipsForeignLoadGifBuffer": (InputFormat.GIF,),
    "VipsForeignLoadTiffBuffer": (InputFormat.TIFF,),
    "VipsForeignLoadSvgBuffer": (InputFormat.SVG,),
}
"""The libvips buffer loaders PixelMesh knows, by class name, and the input formats each decodes."""

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
_HEIF_BRANDS = frozenset({b"avif", b"avis", b"heic", b"heix", b"mif1", b"msf1", b"hevc"})

FAIL_ON = "error"
"""libvips' fail-on level for every decode: truncation and decoder errors abort the job."""


class SourceRefusedError(Exception):
    """A source the input limits refuse, with the reason a job or a request fails with."""

    def __init__(self, reason: FailureReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What the header says about a source that passed the limits."""

    format: InputFormat
    loader: str
    """The libvips loader class that decodes it (the one the allow-list was checked against)."""
    width: int
    height: int
    """Of one page or frame."""
    frames: int
    orientation: int
    """EXIF orientation, 1 (upright) to 8."""
    size: int
    """In bytes."""

    @property
    def pixels(self) -> int:
        """Width x height x frames: what decoding everything would cost."""
        return self.width * self.height * self.frames

    def displayed_size(self, *, autorotate: bool) -> tuple[int, int]:
        """Width and height after the EXIF orientation is applied (when `autorotate`)."""
        if autorotate and self.orientation in (5, 6, 7, 8):
            return self.height, self.width
        return self.width, self.height


def inspect_source(source: bytes, limits: InputLimits) -> SourceInfo:
    """Check `source` against `limits` from its bytes and header only; raise `SourceRefusedError`."""
    if not source:
        raise SourceRefusedError(FailureReason.CORRUPT, "The source is empty (0 bytes).")
    check_size(len(source), limits)
    allowed = set(limits.formats)
    loader = find_loader(source)
    if loader is None:
        looks_like = sniff_signature(source)
        if looks_like is not None:
            raise SourceRefusedError(
                FailureReason.CORRUPT,
                f"The source starts like a {looks_like} file but libvips cannot parse it "
                "(truncated or damaged).",
            )
        raise SourceRefusedError(
            FailureReason.UNSUPPORTED_FORMAT,
            f"No image decoder recognises the source (it starts with {source[:12]!r}).",
        )
    candidates = LOADER_FORMATS.get(loader)
    if candidates is None:
        raise SourceRefusedError(
            FailureReason.UNSUPPORTED_FORMAT,
            f"The source is decoded by libvips' {loader}, which is not a supported input format.",
        )
    if not allowed.intersection(candidates):
        raise _not_allowed("/".join(f.value for f in candidates), allowed)

    header = _load_header(source, loader)
    input_format = candidates[0]
    if candidates == (InputFormat.AVIF, InputFormat.HEIF):
        compression = _get_str(header, "heif-compression")
        input_format = InputFormat.AVIF if compression == "av1" else InputFormat.HEIF
        if input_format not in allowed:
            raise _not_allowed(input_format.value, allowed)

    info = SourceInfo(
        format=input_format,
        loader=loader,
        width=header.width,
        height=header.height,
        frames=max(1, _get_int(header, "n-pages", 1)),
        orientation=_orientation(header),
        size=len(source),
    )
    if info.frames > limits.max_frames:
        raise SourceRefusedError(
            FailureReason.TOO_MANY_FRAMES,
            f"The source has {info.frames} frames/pages, more than maxFrames ({limits.max_frames}).",
        )
    if info.pixels > limits.max_pixels:
        raise SourceRefusedError(
            FailureReason.TOO_MANY_PIXELS,
            f"The source is {info.width}x{info.height}"
            + (f"x{info.frames} frames" if info.frames > 1 else "")
            + f" = {info.pixels} pixels, more than maxPixels ({limits.max_pixels}).",
        )
    return info


def check_size(size: int, limits: InputLimits) -> None:
    """Raise `SourceRefusedError(too_large)` if `size` bytes exceed `maxBytes`."""
    if size > limits.max_bytes:
        raise SourceRefusedError(
            FailureReason.TOO_LARGE, f"The source is {size} bytes, more than maxBytes ({limits.max_bytes})."
        )


def sniff_families(source: bytes) -> tuple[InputFormat, ...]:
    """The input formats the loader libvips would pick for `source` decodes (empty: none we know)."""
    loader = find_loader(source)
    return () if loader is None else LOADER_FORMATS.get(loader, ())


def find_loader(data: bytes) -> str | None:
    """The class name of the loader libvips would use for `data` (e.g. `VipsForeignLoadJpegBuffer`).

    None when no loader recognises the bytes. Nothing is decoded.
    """
    if not data:
        return None
    pointer = pyvips.vips_lib.vips_foreign_find_load_buffer(data, len(data))
    if pointer == pyvips.ffi.NULL:
        # The failed lookup leaves a message in libvips' error buffer (one for all threads); clear
        # it so it does not prefix the next, unrelated error.
        pyvips.vips_lib.vips_error_clear()
        return None
    return str(pyvips.ffi.string(pointer).decode())


def sniff_signature(source: bytes) -> str | None:
    """The raster format whose magic bytes `source` starts with, if any (no parsing beyond that).

    libvips' own sniffers also check structure, so a truncated file can go unrecognised; its
    signature still tells a broken image (`corrupt`) from something that is not one.
    """
    for prefix, name in _SIGNATURES:
        if source.startswith(prefix):
            return name
    if source[4:8] == b"ftyp" and source[8:12] in _HEIF_BRANDS:
        return "HEIF/AVIF"
    if source[:4] == b"RIFF" and source[8:12] == b"WEBP":
        return "WebP"
    return None


def error_detail(error: pyvips.Error) -> str:
    """The most useful one-line text of a libvips error (its first detail line, or its message)."""
    detail = str(getattr(error, "detail", "") or "").strip()
    first = detail.splitlines()[0].strip() if detail else ""
    return first or str(getattr(error, "message", "") or error)


def _load_header(source: bytes, loader: str) -> pyvips.Image:
    try:
        header = pyvips.Operation.call(loader, source, access=pyvips.Access.SEQUENTIAL, fail_on=FAIL_ON)
    except pyvips.Error as error:
        raise SourceRefusedError(
            FailureReason.CORRUPT, f"The source's header cannot be read: {error_detail(error)}."
        ) from error
    assert isinstance(header, pyvips.Image)
    return header


def _not_allowed(name: str, allowed: set[InputFormat]) -> SourceRefusedError:
    listed = ", ".join(sorted(f.value for f in allowed))
    return SourceRefusedError(
        FailureReason.UNSUPPORTED_FORMAT,
        f"The source is {name}, which this pipeline does not accept (allowed: {listed}).",
    )


def _get_int(image: pyvips.Image, field: str, default: int) -> int:
    if image.get_typeof(field) == 0:
        return default
    value = image.get(field)
    return int(value) if isinstance(value, int | float) else default


def _get_str(image: pyvips.Image, field: str) -> str | None:
    if image.get_typeof(field) == 0:
        return None
    value = image.get(field)
    return value if isinstance(value, str) else None


def _orientation(image: pyvips.Image) -> int:
    orientation = _get_int(image, "orientation", 1)
    return orientation if 1 <= orientation <= 8 else 1
