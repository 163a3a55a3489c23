"""Every step, by operation model. Adding a step is one module and one line here.

The order of `STEPS` is the order of the `Step` union's members, which a test keeps in sync.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pixelmesh.api.base import ApiModel
from pixelmesh.api.pipeline import Step
from pixelmesh.worker.steps import (
    autorotate,
    blur,
    crop,
    flatten,
    flip,
    flop,
    grayscale,
    pad,
    resize,
    rotate,
    sharpen,
    strip_metadata,
    thumbnail,
    to_srgb,
    watermark,
)
from pixelmesh.worker.steps.context import Context
from pixelmesh.worker.steps.step import StepDef

STEPS: tuple[StepDef[Any], ...] = (
    autorotate.STEP,
    strip_metadata.STEP,
    to_srgb.STEP,
    flatten.STEP,
    resize.STEP,
    thumbnail.STEP,
    crop.STEP,
    rotate.STEP,
    flip.STEP,
    flop.STEP,
    blur.STEP,
    sharpen.STEP,
    grayscale.STEP,
    pad.STEP,
    watermark.STEP,
)

BY_MODEL: Mapping[type[ApiModel], StepDef[Any]] = {definition.model: definition for definition in STEPS}


def step_def(step: Step) -> StepDef[Any]:
    """The definition that runs `step`."""
    return BY_MODEL[type(step.operation)]


def apply_step(context: Context, step: Step) -> None:
    """Run one step of a pipeline on `context`."""
    step_def(step).run(context, step.operation)
