"""Contenders' outputs are read back from their bytes and checked against the workload."""

from __future__ import annotations

import pytest
import pyvips

from bench.verify import OutputInfo, describe_output, format_of_loader, output_problems
from bench.workloads import ImageFormat, workload

WEB_SET = workload("web-set")


def good_web_set() -> list[OutputInfo]:
    return [
        OutputInfo("web-1600", ImageFormat.WEBP, 1600, 1200, 60_000),
        OutputInfo("web-800", ImageFormat.JPEG, 800, 600, 40_000),
        OutputInfo("square-200", ImageFormat.JPEG, 200, 200, 6_000),
    ]


def test_equivalent_outputs_have_no_problems():
    assert output_problems(WEB_SET, (4000, 3000), good_web_set()) == []


def test_a_pixel_of_rounding_is_not_a_problem():
    outputs = good_web_set()
    outputs[1] = OutputInfo("web-800", ImageFormat.JPEG, 800, 601, 40_000)
    assert output_problems(WEB_SET, (4000, 3000), outputs) == []


def test_missing_extra_wrong_format_and_wrong_size_are_each_reported():
    outputs = good_web_set()
    outputs[0] = OutputInfo("web-1600", ImageFormat.JPEG, 1600, 1200, 1)
    outputs[2] = OutputInfo("square-200", ImageFormat.JPEG, 200, 150, 1)
    del outputs[1]
    outputs.append(OutputInfo("bonus", ImageFormat.JPEG, 10, 10, 1))
    problems = output_problems(WEB_SET, (4000, 3000), outputs)
    assert problems == [
        "unexpected outputs ['bonus']",
        "web-1600: jpeg instead of webp",
        "web-800: missing",
        "square-200: 200x150 instead of 200x200",
    ]


@pytest.mark.parametrize(
    ("loader", "expected"),
    [
        ("jpegload_buffer", ImageFormat.JPEG),
        ("webpload_source", ImageFormat.WEBP),
        ("heifload_buffer", ImageFormat.AVIF),
        ("pngload_buffer", None),
    ],
)
def test_loader_names_map_to_formats(loader, expected):
    assert format_of_loader(loader) is expected


@pytest.mark.parametrize(
    ("suffix", "options", "expected"),
    [
        (".jpg", {"Q": 80}, ImageFormat.JPEG),
        (".webp", {"Q": 80}, ImageFormat.WEBP),
        (".avif", {"Q": 60, "effort": 0, "compression": "av1"}, ImageFormat.AVIF),
        (".png", {}, None),
    ],
)
def test_describe_output_reads_format_and_size_from_the_encoded_bytes(suffix, options, expected):
    image = (pyvips.Image.xyz(96, 64)[0] * 2).cast("uchar").bandjoin([40, 200])
    data = image.write_to_buffer(suffix, **options)
    info = describe_output("v", data)
    assert (info.variant, info.format, info.width, info.height, info.size) == (
        "v",
        expected,
        96,
        64,
        len(data),
    )
