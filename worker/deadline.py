"""A per-job time bound that really stops libvips work.

libvips builds pipelines lazily and does the pixel work inside one evaluation (a save or a
`copy_memory`), which may run for seconds on a large or adversarial image. Checking the clock
between steps is not enough, so every evaluation is watched: progress reporting is switched on for
the image being evaluated, and its `eval` signal (emitted as tiles complete) sets libvips' kill flag
once the deadline has passed. libvips then aborts the evaluation with a "killed" error, which the
executor reports as `timeout`. This works in pyvips 3.2 / libvips 8.18 for every saver here,
including AVIF, and for the decode the evaluation pulls in.

Caveat: work outside an evaluation loop cannot be interrupted: a codec's final encode call (the AV1
encoder runs after all pixels are computed) and eager operations such as the attention crop's
analysis of a thumbnail. Those are bounded by the input limits; the clock is checked again right
after them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pyvips

from pixelmesh.api.messages import FailureReason
from pixelmesh.worker.errors import PermanentError

T = TypeVar("T")


def check_deadline(deadline: float | None, doing: str) -> None:
    """Raise `PermanentError(timeout)` if `deadline` (a `time.monotonic()` instant) has passed."""
    if past(deadline):
        raise PermanentError(FailureReason.TIMEOUT, f"The job ran out of time before {doing}.")


def past(deadline: float | None) -> bool:
    """True when `deadline` is set and has passed."""
    return deadline is not None and time.monotonic() > deadline


def evaluate_within(
    image: pyvips.Image, deadline: float | None, doing: str, evaluate: Callable[[pyvips.Image], T]
) -> T:
    """Run `evaluate(image)` (which computes pixels), killing libvips' work at `deadline`."""
    check_deadline(deadline, doing)
    if deadline is None:
        return evaluate(image)
    # A fresh header of the same pipeline carries this job's handler only, even when `image` is
    # shared by several variants.
    watched = image.copy()
    watched.set_progress(True)

    def on_eval(evaluating: pyvips.Image, _progress: object) -> None:
        if time.monotonic() > deadline:
            evaluating.set_kill(True)

    watched.signal_connect("eval", on_eval)
    try:
        return evaluate(watched)
    except pyvips.Error as error:
        if past(deadline):
            raise PermanentError(
                FailureReason.TIMEOUT, f"The job ran out of time while {doing}; libvips was stopped."
            ) from error
        raise
