"""Checking that contenders make equivalent outputs, before their speed is compared.

Each contender's warm-up outputs are described from their bytes (format and size read from the
header by libvips, never trusted from the contender's own report) and compared with what the
workload asks for: the right variants, formats, and sizes within a pixel. A contender that makes
something else would be measured doing other work, so the run stops instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.workloads import ImageFormat, Workload, expected_size, sizes_match

_LOADER_FORMATS = {"jpegload": ImageFormat.JPEG, "webpload": ImageFormat.WEBP, "heifload": ImageFormat.AVIF}


@dataclass(frozen=True, slots=True)
class OutputInfo:
    """One output as read back from its bytes."""

    variant: str
    format: ImageFormat | None
    """None: not a format any workload writes."""
    width: int
    height: int
    size: int
    """Bytes."""

    def to_json(self) -> dict[str, object]:
        return {
            "variant": self.variant,
            "format": self.format.value if self.format else None,
            "width": self.width,
            "height": self.height,
            "bytes": self.size,
        }


def format_of_loader(loader: str) -> ImageFormat | None:
    """The format libvips' loader name stands for (`jpegload_buffer` -> jpeg)."""
    for prefix, image_format in _LOADER_FORMATS.items():
        if loader.startswith(prefix):
            return image_format
    return None


def describe_output(variant: str, data: bytes) -> OutputInfo:
    """Read an encoded output's format and size from its header."""
    import pyvips  # noqa: PLC0415 - the pure checks below do not need libvips

    image = pyvips.Image.new_from_buffer(data, "")
    image_format = format_of_loader(str(image.get("vips-loader")))
    if image_format is ImageFormat.AVIF and image.get("heif-compression") != "av1":
        image_format = None  # HEVC HEIF, not AVIF
    return OutputInfo(variant, image_format, image.width, image.height, len(data))


def output_problems(item: Workload, source_size: tuple[int, int], outputs: Sequence[OutputInfo]) -> list[str]:
    """Every way `outputs` differ from what `item` asks of a source of `source_size` (empty: equivalent)."""
    problems = []
    by_variant = {output.variant: output for output in outputs}
    expected_names = [spec.name for spec in item.outputs]
    extra = sorted(set(by_variant) - set(expected_names))
    if extra:
        problems.append(f"unexpected outputs {extra}")
    for spec in item.outputs:
        output = by_variant.get(spec.name)
        if output is None:
            problems.append(f"{spec.name}: missing")
            continue
        if output.format is not spec.format:
            found = output.format.value if output.format else "another format"
            problems.append(f"{spec.name}: {found} instead of {spec.format.value}")
        expected = expected_size(spec, *source_size)
        if not sizes_match((output.width, output.height), expected):
            problems.append(
                f"{spec.name}: {output.width}x{output.height} instead of {expected[0]}x{expected[1]}"
            )
    return problems
