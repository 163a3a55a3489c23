"""Probe a source against the input limits, then decode it.

`probe_source` is `pixelmesh.imaging.inspect_source` (the check the gateway runs too, from the
bytes and the header only) with its refusals raised as `PermanentError`s carrying the same reason;
`check_source_size` is its first check alone, for a job whose declared size already says enough.

`load_source` then decodes with `fail_on="error"`, so a truncated or damaged file fails the job as
`corrupt` instead of producing a grey-bottomed image. Only the first page of a multi-page source is
decoded.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping

import pyvips

from pixelmesh.api.messages import FailureReason
from pixelmesh.api.pipeline import InputLimits
from pixelmesh.imaging import (
    FAIL_ON,
    SourceInfo,
    SourceRefusedError,
    check_size,
    error_detail,
    inspect_source,
)
from pixelmesh.worker.errors import PermanentError


def probe_source(source: bytes, limits: InputLimits) -> SourceInfo:
    """Check `source` against `limits` from its bytes and header only; raise `PermanentError` if refused."""
    with _refusal_is_permanent():
        return inspect_source(source, limits)


def check_source_size(size: int, limits: InputLimits) -> None:
    """Refuse a source by its declared size alone, before loading it: `PermanentError(too_large)`."""
    with _refusal_is_permanent():
        check_size(size, limits)


def load_source(
    source: bytes, info: SourceInfo, *, sequential: bool, reduce: Mapping[str, int | float] | None = None
) -> pyvips.Image:
    """Open the source's first page for decoding with the probed loader, failing on decode errors.

    libvips decodes lazily: pixels are produced when an evaluation (a save, `copy_memory`) asks
    for them. `sequential` streams top to bottom with a small line buffer; random access keeps
    the whole decoded image (libvips decodes it once, on first use, and shares it). `reduce` are
    the loader's options for decoding at reduced size (`reduced_load`).
    """
    access = pyvips.Access.SEQUENTIAL if sequential else pyvips.Access.RANDOM
    try:
        image = pyvips.Operation.call(info.loader, source, access=access, fail_on=FAIL_ON, **(reduce or {}))
    except pyvips.Error as error:
        raise PermanentError(
            FailureReason.CORRUPT, f"The source cannot be opened: {error_detail(error)}."
        ) from error
    assert isinstance(image, pyvips.Image)
    return image


def reduced_load(info: SourceInfo, scale: float) -> tuple[dict[str, int | float], tuple[int, int]] | None:
    """Loader options that decode the source at no less than `scale` of its size, and that size.

    A JPEG decodes at 1/2, 1/4 or 1/8 scale in libjpeg's DCT (the largest factor that keeps
    `scale`, like Pillow's draft mode; libvips' own thumbnail keeps a margin of two); a WebP at
    any scale (a pixel of margin for libwebp's rounding). None for loaders that cannot reduce.
    """
    width, height = info.width, info.height
    if info.loader == "VipsForeignLoadJpegBuffer":
        shrink = next((s for s in (8, 4, 2) if s * scale <= 1.0), 1)
        return ({"shrink": shrink} if shrink > 1 else {}), (-(-width // shrink), -(-height // shrink))
    if info.loader == "VipsForeignLoadWebpBuffer":
        if scale >= 1.0:
            return {}, (width, height)
        margin = min(1.0, scale + 1.0 / min(width, height))
        return {"scale": margin}, (math.ceil(width * margin), math.ceil(height * margin))
    return None


@contextlib.contextmanager
def _refusal_is_permanent() -> Iterator[None]:
    try:
        yield
    except SourceRefusedError as refused:
        raise PermanentError(refused.reason, refused.message) from refused
