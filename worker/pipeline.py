"""The executor: probe the source, run the shared steps, then each variant's steps, and encode.

Decoding (one rule, chosen per job from the spec):

- Nothing is decoded until a step needs pixels (`steps.context`). A branch whose first pixel step
  is a `thumbnail` or `resize` decodes through libvips' shrink-on-load thumbnail: a 4000x3000 JPEG
  made into a 400-pixel thumbnail decodes 1/8 of the pixels. For such a variant, a private
  reduced decode beats sharing one full decode, so it gets its own.
- Shared steps that need pixels run once; with several variants, their result is computed into
  memory once and every variant starts from it.
- Without shared pixel steps, the variants that need full-size pixels share one decode: with two
  or more of them the source is opened for random access (libvips decodes it once, on first use,
  and keeps it); a single one streams it (sequential access, a few lines in memory).
- A streaming pipeline meets an out-of-order step (rotate, flip, a sideways EXIF orientation) by
  being materialised at that point (`Context.random_access_image`).

Safety: `probe_source` enforces the input limits from the header; decodes fail on errors; each
evaluation is killed at the deadline (`deadline`). libvips errors become `PermanentError`
(`timeout` past the deadline, `corrupt` when the source alone fails to decode, `processing_failed`
otherwise) or, for memory exhaustion, `RetryableError`.

Thread safety: nothing here is shared between calls except immutable libvips images (a cached
watermark), so `run_pipeline` may run on many threads at once; libvips releases the GIL while it
computes.

Timings passed to `observe_step` are wall-clock seconds for `probe`, each step by wire name,
`share` (computing shared pixels once) and `encode`. libvips is lazy: most pixel work of the steps
lands in `encode`; a step's own time covers what it computes eagerly (a shrink-on-load, an
attention crop's analysis, a materialisation).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pyvips

from pixelmesh.api.messages import FailureReason
from pixelmesh.api.pipeline import (
    CONCRETE_EXTENSIONS,
    CONTENT_TYPES,
    OutputType,
    PipelineSpec,
    Step,
    Variant,
)
from pixelmesh.imaging import SourceInfo, error_detail
from pixelmesh.worker.deadline import check_deadline, evaluate_within, past
from pixelmesh.worker.encode import encode_image, prepare_for
from pixelmesh.worker.errors import PermanentError, RetryableError
from pixelmesh.worker.source import load_source, probe_source
from pixelmesh.worker.steps.context import Context, MetadataPolicy
from pixelmesh.worker.steps.registry import step_def
from pixelmesh.worker.steps.strip_metadata import finish_metadata

StepObserver = Callable[[str, float], None]
"""Called with (step wire name, seconds) after each step, for metrics."""

DEFAULT_AUTO_FORMAT = OutputType.JPEG


@dataclass(frozen=True, slots=True)
class EncodedOutput:
    """One encoded variant."""

    variant: str
    format: OutputType
    """Concrete (never `auto`)."""
    extension: str
    content_type: str
    data: bytes
    width: int
    height: int


def run_pipeline(
    spec: PipelineSpec,
    source: bytes,
    *,
    variants: Sequence[str] | None = None,
    formats: Mapping[str, OutputType] | None = None,
    deadline: float | None = None,
    observe_step: StepObserver | None = None,
) -> list[EncodedOutput]:
    """Run `spec` on `source` and return one encoded output per chosen variant, in spec order.

    `variants` limits the run to those names (`unknown_variant` if one is not in the spec).
    `formats` gives the concrete format of `auto` variants by name (JPEG when absent).
    `deadline` is a `time.monotonic()` instant. Raises `PermanentError` for bad input or limits and
    `RetryableError` for transient conditions.
    """
    observe: StepObserver = observe_step or _ignore
    chosen = choose_variants(spec, variants)
    check_deadline(deadline, "reading the source")
    started = time.monotonic()
    info = probe_source(source, spec.input)
    observe("probe", time.monotonic() - started)

    base = Context(
        source=source,
        info=info,
        deadline=deadline,
        orient=spec.autorotate,
        metadata=MetadataPolicy(strip=spec.strip_metadata),
    )
    try:
        run_steps(base, spec.steps, observe, branch="the shared steps")
        share_base(base, chosen, observe)
        return [_run_variant(base.fork(), variant, formats or {}, observe) for variant in chosen]
    except pyvips.Error as error:
        corrupt = not past(deadline) and not source_decodes(source, info)
        raise classify_libvips_error(error, deadline, corrupt_source=corrupt) from error


def choose_variants(spec: PipelineSpec, names: Sequence[str] | None) -> list[Variant]:
    """The variants to run, in spec order; `unknown_variant` for a name the spec lacks."""
    if names is None:
        return list(spec.variants)
    known = {variant.name for variant in spec.variants}
    unknown = sorted(set(names) - known)
    if unknown:
        raise PermanentError(
            FailureReason.UNKNOWN_VARIANT,
            f"The pipeline has no variant {', '.join(unknown)} (it has {', '.join(sorted(known))}).",
        )
    wanted = set(names)
    return [variant for variant in spec.variants if variant.name in wanted]


def run_steps(context: Context, steps: Sequence[Step], observe: StepObserver, *, branch: str) -> None:
    """Run `steps` in order on `context`, checking the deadline before each."""
    for index, step in enumerate(steps):
        context.check_deadline(f"step {index + 1} ({step.name}) of {branch}")
        started = time.monotonic()
        step_def(step).run(context, step.operation)
        observe(step.name, time.monotonic() - started)


def share_base(base: Context, variants: Sequence[Variant], observe: StepObserver) -> None:
    """Prepare the shared starting point of the variants (see the module notes for the rule)."""
    if len(variants) < 2:
        return
    started = time.monotonic()
    if base.decoded:
        base.materialise("computing the shared steps")
    elif sum(1 for variant in variants if not shrinks_on_load(variant.steps)) >= 2:
        base.decode(random_access=True)
    else:
        return
    observe("share", time.monotonic() - started)


def shrinks_on_load(steps: Sequence[Step]) -> bool:
    """True when the first step that needs pixels decodes at reduced size (thumbnail, resize)."""
    for step in steps:
        definition = step_def(step)
        if definition.needs_pixels:
            return definition.shrinks_on_load
    return False


def resolve_format(variant: Variant, formats: Mapping[str, OutputType]) -> OutputType:
    """The concrete output format of `variant` (`auto` resolved through `formats`, else JPEG)."""
    if variant.format.type is not OutputType.AUTO:
        return variant.format.type
    resolved = formats.get(variant.name, DEFAULT_AUTO_FORMAT)
    return DEFAULT_AUTO_FORMAT if resolved is OutputType.AUTO else resolved


def source_decodes(source: bytes, info: SourceInfo) -> bool:
    """Whether the source's first page decodes without error, read top to bottom once.

    After a libvips failure this tells a damaged source from a failed operation. libvips' error
    text cannot: its error buffer is shared by every thread, so while other jobs run, a job's
    error may carry another job's message, or none.
    """
    try:
        load_source(source, info, sequential=True).avg()
    except (pyvips.Error, PermanentError):
        return False
    return True


def classify_libvips_error(
    error: pyvips.Error, deadline: float | None, *, corrupt_source: bool
) -> PermanentError | RetryableError:
    """The fate of a libvips failure: timeout, corrupt input, memory pressure, or a failed operation."""
    detail = error_detail(error)
    if past(deadline) or "killed" in detail:
        return PermanentError(
            FailureReason.TIMEOUT, f"The job ran out of time; libvips was stopped ({detail})."
        )
    if corrupt_source:
        return PermanentError(FailureReason.CORRUPT, f"The source cannot be decoded: {detail}.")
    lowered = detail.lower()
    if "out of memory" in lowered or "memory allocation" in lowered:
        return RetryableError(f"libvips ran out of memory: {detail}.")
    return PermanentError(FailureReason.PROCESSING_FAILED, f"libvips failed: {detail}.")


def _run_variant(
    context: Context, variant: Variant, formats: Mapping[str, OutputType], observe: StepObserver
) -> EncodedOutput:
    run_steps(context, variant.steps, observe, branch=f"variant {variant.name}")
    concrete = resolve_format(variant, formats)
    started = time.monotonic()
    image, keep = finish_metadata(prepare_for(context.image, concrete), context.metadata)
    data = evaluate_within(
        image,
        context.deadline,
        f"encoding variant {variant.name} as {concrete.value}",
        lambda watched: encode_image(watched, variant.format, concrete, keep=keep),
    )
    observe("encode", time.monotonic() - started)
    return EncodedOutput(
        variant=variant.name,
        format=concrete,
        extension=CONCRETE_EXTENSIONS[concrete],
        content_type=CONTENT_TYPES[concrete],
        data=data,
        width=image.width,
        height=image.height,
    )


def _ignore(_name: str, _seconds: float) -> None:
    return None
