"""The executor: probe the source, run the shared steps, then each variant's steps, and encode.

Decoding (one rule, chosen per job from the spec):

- Nothing is decoded until a step needs pixels (`steps.context`). A branch whose first pixel step
  is a `thumbnail` or `resize` decodes at reduced size (shrink-on-load): a 4000x3000 JPEG made
  into a 400x300 thumbnail decodes 1/64 of the pixels. A single such variant gets its own reduced
  decode, streamed.
- Shared steps that need pixels run once; with several variants, their result is computed into
  memory once and every variant starts from it.
- Without shared pixel steps, the variants that need full-size pixels share one decode: with two
  or more of them the source is opened for random access (libvips decodes it once, on first use,
  and keeps it), and every variant starts from it; a single one streams it.
- Otherwise two or more variants that begin with a thumbnail/resize of a JPEG or WebP share one
  decode at the smallest size that serves the largest of them (`jpegload shrink`, `webpload
  scale`), in memory, and each makes its thumbnail from that. A JPEG's entropy decoding costs the
  whole file at any shrink, so three outputs of a 12 MP photo cost a third less CPU than three
  shrink-on-load thumbnails. The outputs differ from separate thumbnails by resampling only
  (means within a grey level). Above `SHARED_DECODE_MAX_PIXELS` each variant streams its own.
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
from pixelmesh.worker.source import load_source, probe_source, reduced_load
from pixelmesh.worker.steps.context import Context, MetadataPolicy
from pixelmesh.worker.steps.registry import step_def
from pixelmesh.worker.steps.strip_metadata import finish_metadata

StepObserver = Callable[[str, float], None]
"""Called with (step wire name, seconds) after each step, for metrics."""

DEFAULT_AUTO_FORMAT = OutputType.JPEG
SHARED_DECODE_MAX_PIXELS = 25_000_000
"""Largest decode kept in memory for the thumbnails of one job; above it each variant streams its own
(a decoded 25 MP RGB image is 75 MB, held while the job's variants run)."""


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
        starts = share_base(base, chosen, observe)
        return [
            _run_variant(start, variant, formats or {}, observe)
            for start, variant in zip(starts, chosen, strict=True)
        ]
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


def share_base(base: Context, variants: Sequence[Variant], observe: StepObserver) -> list[Context]:
    """Each variant's starting context, sharing what can be shared (the rule: the module notes)."""
    if len(variants) < 2:
        return [base.fork() for _ in variants]
    started = time.monotonic()
    reducing = [shrinks_on_load(variant.steps) for variant in variants]
    if base.decoded:
        base.materialise("computing the shared steps")
    elif reducing.count(False) >= 2:
        base.decode(random_access=True)
    elif reducing.count(True) >= 2 and (reduced := _shared_reduced_decode(base, variants, reducing)):
        observe("share", time.monotonic() - started)
        return [(reduced if reduces else base).fork() for reduces in reducing]
    else:
        return [base.fork() for _ in variants]
    observe("share", time.monotonic() - started)
    return [base.fork() for _ in variants]


def _shared_reduced_decode(
    base: Context, variants: Sequence[Variant], reducing: Sequence[bool]
) -> Context | None:
    """One decode, in memory, that serves every shrink-on-load variant; None if there is none to share."""
    displayed = base.displayed_size()
    scale = max(
        load_scale(variant.steps, displayed)
        for variant, reduces in zip(variants, reducing, strict=True)
        if reduces
    )
    found = reduced_load(base.info, scale)
    if found is None:
        return None
    options, (width, height) = found
    if width * height > SHARED_DECODE_MAX_PIXELS:
        return None
    shared = base.fork()
    shared.decode_reduced(options, "decoding the source once for its thumbnails")
    return shared


def shrinks_on_load(steps: Sequence[Step]) -> bool:
    """True when the first step that needs pixels decodes at reduced size (thumbnail, resize)."""
    first = _first_pixel_step(steps)
    return first is not None and step_def(first).shrinks_on_load


def load_scale(steps: Sequence[Step], displayed: tuple[int, int]) -> float:
    """The fraction of the source size (`displayed`: upright width, height) the first pixel step needs.

    1.0 (or more, when it enlarges) unless that step shrinks on load and says how far.
    """
    first = _first_pixel_step(steps)
    if first is None:
        return 1.0
    scale_of = step_def(first).load_scale
    return 1.0 if scale_of is None else scale_of(first.operation, displayed)


def _first_pixel_step(steps: Sequence[Step]) -> Step | None:
    return next((step for step in steps if step_def(step).needs_pixels), None)


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
