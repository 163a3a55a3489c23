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
from collections.abc import Iterator

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


def load_source(source: bytes, info: SourceInfo, *, sequential: bool) -> pyvips.Image:
    """Open the source's first page for decoding with the probed loader, failing on decode errors.

    libvips decodes lazily: pixels are produced when an evaluation (a save, `copy_memory`) asks
    for them. `sequential` streams top to bottom with a small line buffer; random access keeps
    the whole decoded image (libvips decodes it once, on first use, and shares it).
    """
    access = pyvips.Access.SEQUENTIAL if sequential else pyvips.Access.RANDOM
    try:
        image = pyvips.Operation.call(info.loader, source, access=access, fail_on=FAIL_ON)
    except pyvips.Error as error:
        raise PermanentError(
            FailureReason.CORRUPT, f"The source cannot be opened: {error_detail(error)}."
        ) from error
    assert isinstance(image, pyvips.Image)
    return image


@contextlib.contextmanager
def _refusal_is_permanent() -> Iterator[None]:
    try:
        yield
    except SourceRefusedError as refused:
        raise PermanentError(refused.reason, refused.message) from refused
