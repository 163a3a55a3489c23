"""Refusing bad sources at the door, from their header alone.

A decompression bomb (a few hundred kilobytes that decode to gigapixels) or a format the pipeline
does not allow should cost the gateway microseconds and no job, not a worker's memory. The check is
the worker's own (`pixelmesh.imaging`): libvips sniffs the format from the first bytes, then reads
only the header; no pixel is decoded. Workers check again (they must: jobs may arrive by other
paths), so this is an early answer, not the only guard, and it gives the answer the worker would.

Caveat: a file whose header is fine but whose pixels are corrupt passes here and fails in the
worker with `corrupt`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pixelmesh.api.http import ProblemCode
from pixelmesh.api.pipeline import InputLimits
from pixelmesh.imaging import SourceRefusedError, inspect_source, sniff_families

__all__ = ["Refusal", "check_source", "sniff_families"]


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a source is refused: the problem code (a job failure reason) and a sentence."""

    code: ProblemCode
    detail: str


def check_source(data: bytes, limits: InputLimits) -> Refusal | None:
    """Why the pipeline would refuse `data`, or None if its header is within `limits`."""
    try:
        inspect_source(data, limits)
    except SourceRefusedError as refused:
        return Refusal(ProblemCode(refused.reason.value), refused.message)
    return None
