"""What a step module exports: its operation model, its function, and how it meets the source.

A step is `run(context, operation) -> None` over the one `Context` (imgproxy's pipeline shape): it
reads `context.image` (or `context.random_access_image()`), replaces it, and may raise
`PermanentError`. Each step module defines one `STEP = StepDef(...)`; the registry lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from pixelmesh.api.base import ApiModel
from pixelmesh.worker.steps.context import Context

OperationT = TypeVar("OperationT", bound=ApiModel)


@dataclass(frozen=True, slots=True)
class StepDef(Generic[OperationT]):
    """A step: the wire name and model of its operation, and the function that applies it."""

    name: str
    """The operation's wire name, e.g. `stripMetadata` (also the metrics label)."""
    model: type[OperationT]
    run: Callable[[Context, OperationT], None]
    shrinks_on_load: bool = False
    """As the first pixel step, it decodes the source at reduced size (thumbnail, resize)."""
    load_scale: Callable[[OperationT, tuple[int, int]], float] | None = None
    """For a step that shrinks on load: the fraction of the (upright) source size, width x height,
    that its input must keep for the step to give the same result (1.0 or more: full size)."""
    needs_pixels: bool = True
    """False for steps that only change settings and leave an undecoded source undecoded."""
