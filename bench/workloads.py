"""The workloads: what each image becomes, described once and translated for every contender.

Problem: a comparison is only fair when every contender makes the same outputs. Approach: one neutral
`OutputSpec` per output (box, crop, format, quality, effort); pure translators turn it into a
PixelMesh `Variant`, pyvips `thumbnail` arguments and save options, a Pillow plan, and a thumbor URL
path. `expected_size` says what every contender must produce from a source of a given size; the bench
checks each contender's warm-up outputs against it before measuring anything.

Caveat: the encoders are configured alike (quality, effort/speed, optimised Huffman tables, baseline
JPEG, default 4:2:0 chroma below quality 90) but their quality scales are not identical, AVIF's
least of all (libheif and libavif map quality to the aom quantiser differently). Sizes and formats
are exact; byte sizes are recorded so the reader can see how far apart the encoders land.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from pixelmesh.api.messages import PipelineRef
from pixelmesh.api.pipeline import (
    Crop,
    Flatten,
    OutputFormat,
    OutputType,
    PipelineSpec,
    Step,
    Thumbnail,
    Variant,
)

VIPS_MAX_COORD = 10_000_000
"""libvips' largest coordinate: the height of a box that constrains only the width."""

BENCH_PIPELINE = PipelineRef(namespace="bench", name="photos")
"""The ImagePipeline the PixelMesh contenders run: every workload's outputs are its variants."""


class ImageFormat(StrEnum):
    """An output format every contender can write."""

    JPEG = "jpeg"
    WEBP = "webp"
    AVIF = "avif"

    @property
    def extension(self) -> str:
        return {"jpeg": "jpg", "webp": "webp", "avif": "avif"}[self.value]

    @property
    def has_alpha(self) -> bool:
        """Whether the format keeps an alpha channel (JPEG does not: sources are flattened first)."""
        return self is not ImageFormat.JPEG


@dataclass(frozen=True, slots=True)
class OutputSpec:
    """One output made from each source image."""

    name: str
    """The PixelMesh variant name; unique across all workloads."""
    width: int
    height: int | None = None
    """None: the height follows the aspect ratio."""
    crop: bool = False
    """Fill exactly `width` x `height` and cut what overflows, centred."""
    format: ImageFormat = ImageFormat.JPEG
    quality: int = 80
    effort: int = 4
    """libvips effort (webp 0-6, avif 0-9); Pillow's WebP `method` and aom's speed `9 - effort`."""

    def __post_init__(self) -> None:
        if self.crop and self.height is None:
            raise ValueError(f"output {self.name} crops, so it needs a height")
        if not self.crop and self.height is not None:
            raise ValueError(f"output {self.name}: a box without a crop is not used by any workload")

    @property
    def avif_speed(self) -> int:
        """The aom encoder speed libvips derives from `effort`, set the same for Pillow and thumbor."""
        return 9 - self.effort


@dataclass(frozen=True, slots=True)
class Workload:
    """A named set of outputs made from every image."""

    name: str
    description: str
    outputs: tuple[OutputSpec, ...]


WORKLOADS: tuple[Workload, ...] = (
    Workload(
        name="thumb",
        description="one 400x300 centre-crop JPEG q80 thumbnail",
        outputs=(OutputSpec("thumb", 400, 300, crop=True),),
    ),
    Workload(
        name="web-set",
        description="1600-wide WebP q80, 800-wide JPEG q80, 200x200 centre-crop JPEG q80",
        outputs=(
            OutputSpec("web-1600", 1600, format=ImageFormat.WEBP),
            OutputSpec("web-800", 800),
            OutputSpec("square-200", 200, 200, crop=True),
        ),
    ),
    Workload(
        name="avif",
        description="one 1200-wide AVIF q60 (effort 4 / aom speed 5)",
        outputs=(OutputSpec("avif-1200", 1200, format=ImageFormat.AVIF, quality=60),),
    ),
)


def workload(name: str) -> Workload:
    """The workload called `name`; KeyError if there is none."""
    for candidate in WORKLOADS:
        if candidate.name == name:
            return candidate
    raise KeyError(name)


# --- geometry -------------------------------------------------------------------------------------


def scale_factor(spec: OutputSpec, source_width: int, source_height: int) -> float:
    """How much the source is scaled (never above 1: no contender enlarges)."""
    if spec.crop:
        assert spec.height is not None
        scale = max(spec.width / source_width, spec.height / source_height)
    else:
        scale = spec.width / source_width
    return min(1.0, scale)


def expected_size(spec: OutputSpec, source_width: int, source_height: int) -> tuple[int, int]:
    """The output's width and height for a source of this size (contenders may differ by a pixel)."""
    scale = scale_factor(spec, source_width, source_height)
    width = max(1, round(source_width * scale))
    height = max(1, round(source_height * scale))
    if spec.crop:
        assert spec.height is not None
        return min(spec.width, width), min(spec.height, height)
    return width, height


def sizes_match(actual: tuple[int, int], expected: tuple[int, int], tolerance: int = 1) -> bool:
    """Whether two sizes agree within `tolerance` pixels per side (rounding differs by library)."""
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def centre_crop_box(
    source_width: int, source_height: int, width: int, height: int
) -> tuple[float, float, float, float]:
    """The centred box of the source, as (left, top, right, bottom), with the aspect of `width` x `height`."""
    target_aspect = width / height
    if source_width / source_height > target_aspect:
        box_width, box_height = source_height * target_aspect, float(source_height)
    else:
        box_width, box_height = float(source_width), source_width / target_aspect
    left = (source_width - box_width) / 2
    top = (source_height - box_height) / 2
    return left, top, left + box_width, top + box_height


def draft_request(outputs: tuple[OutputSpec, ...], source_width: int, source_height: int) -> tuple[int, int]:
    """The smallest decoded size that serves every output: what Pillow's `draft` is asked for.

    JPEG draft mode decodes at 1/2, 1/4 or 1/8 scale, never below the requested size, so asking for
    the largest size any output needs decodes once for all of them.
    """
    scale = max(scale_factor(spec, source_width, source_height) for spec in outputs)
    return math.ceil(source_width * scale), math.ceil(source_height * scale)


# --- translations ---------------------------------------------------------------------------------


def libvips_thumbnail_options(spec: OutputSpec) -> tuple[int, dict[str, Any]]:
    """`pyvips.Image.thumbnail(path, width, **options)` arguments for this output."""
    options: dict[str, Any] = {"height": spec.height or VIPS_MAX_COORD, "size": "down"}
    if spec.crop:
        options["crop"] = "centre"
    return spec.width, options


def libvips_save_options(spec: OutputSpec) -> tuple[str, dict[str, Any]]:
    """`write_to_buffer(suffix, **options)` arguments for this output (metadata stripped, ICC kept)."""
    if spec.format is ImageFormat.JPEG:
        return ".jpg", {"Q": spec.quality, "optimize_coding": True, "keep": "icc"}
    if spec.format is ImageFormat.WEBP:
        return ".webp", {"Q": spec.quality, "effort": spec.effort, "keep": "icc"}
    return ".avif", {"Q": spec.quality, "effort": spec.effort, "compression": "av1", "keep": "icc"}


def pillow_save_options(spec: OutputSpec) -> tuple[str, dict[str, Any]]:
    """`Image.save(buffer, format, **options)` arguments for this output."""
    if spec.format is ImageFormat.JPEG:
        return "JPEG", {"quality": spec.quality, "optimize": True}
    if spec.format is ImageFormat.WEBP:
        return "WEBP", {"quality": spec.quality, "method": spec.effort}
    return "AVIF", {"quality": spec.quality, "speed": spec.avif_speed}


def thumbor_path(spec: OutputSpec, image_name: str) -> str:
    """The unsigned thumbor URL path for this output of `image_name` (served by the file loader).

    thumbor crops to fill when given both sides and keeps the aspect ratio when one side is 0; its
    crop is centred unless smart detection is asked for, which it is not.
    """
    filters = f"filters:quality({spec.quality}):format({spec.format.value})"
    return f"/unsafe/{spec.width}x{spec.height or 0}/{filters}/{quote(image_name)}"


_THUMBOR_PATH = re.compile(
    r"^/unsafe/(?P<width>\d+)x(?P<height>\d+)/filters:quality\((?P<quality>\d+)\):"
    r"format\((?P<format>[a-z]+)\)/(?P<image>.+)$"
)


def parse_thumbor_path(path: str) -> tuple[int, int | None, bool, ImageFormat, int, str]:
    """Read a path made by `thumbor_path` back: (width, height, crop, format, quality, image)."""
    match = _THUMBOR_PATH.match(path)
    if match is None:
        raise ValueError(f"not a bench thumbor path: {path}")
    height = int(match["height"]) or None
    return (
        int(match["width"]),
        height,
        height is not None,
        ImageFormat(match["format"]),
        int(match["quality"]),
        match["image"],
    )


def pixelmesh_variant(spec: OutputSpec) -> Variant:
    """The PixelMesh variant for this output: a thumbnail (shrink-on-load), a flatten before JPEG."""
    steps = [
        Step(
            thumbnail=Thumbnail(
                width=spec.width, height=spec.height, crop=Crop.CENTRE if spec.crop else Crop.NONE
            )
        )
    ]
    if not spec.format.has_alpha:
        steps.append(Step(flatten=Flatten(background="#ffffff")))
    output_type = OutputType(spec.format.value)
    if output_type is OutputType.JPEG:
        output = OutputFormat(type=output_type, quality=spec.quality, optimize_coding=True, progressive=False)
    else:
        output = OutputFormat(type=output_type, quality=spec.quality, effort=spec.effort)
    return Variant(name=spec.name, steps=steps, format=output)


def pixelmesh_pipeline_spec(workloads: tuple[Workload, ...] = WORKLOADS) -> PipelineSpec:
    """One pipeline whose variants are every output of every workload; a job names its workload's."""
    variants = [pixelmesh_variant(spec) for item in workloads for spec in item.outputs]
    return PipelineSpec(variants=variants)


def variant_names(item: Workload) -> list[str]:
    """The variants a PixelMesh job of this workload asks for."""
    return [spec.name for spec in item.outputs]
