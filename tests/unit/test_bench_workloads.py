"""The workloads translate into equivalent work for every contender."""

from __future__ import annotations

import pytest

from bench.workloads import (
    BENCH_PIPELINE,
    VIPS_MAX_COORD,
    WORKLOADS,
    ImageFormat,
    OutputSpec,
    centre_crop_box,
    draft_request,
    expected_size,
    libvips_save_options,
    libvips_thumbnail_options,
    parse_thumbor_path,
    pillow_save_options,
    pixelmesh_pipeline_spec,
    pixelmesh_variant,
    scale_factor,
    sizes_match,
    thumbor_path,
    variant_names,
    workload,
)
from pixelmesh.api.messages import PipelineRevision
from pixelmesh.api.pipeline import Crop, OutputType

ALL_OUTPUTS = [spec for item in WORKLOADS for spec in item.outputs]
SOURCES = [(4000, 3000), (1920, 1080), (1600, 1200), (9400, 5290), (3000, 4000)]


def test_the_issue_s_three_workloads_exist_with_their_outputs():
    assert [item.name for item in WORKLOADS] == ["thumb", "web-set", "avif"]
    assert [(s.width, s.height, s.crop, s.format) for s in workload("thumb").outputs] == [
        (400, 300, True, ImageFormat.JPEG)
    ]
    assert [(s.width, s.height, s.crop, s.format, s.quality) for s in workload("web-set").outputs] == [
        (1600, None, False, ImageFormat.WEBP, 80),
        (800, None, False, ImageFormat.JPEG, 80),
        (200, 200, True, ImageFormat.JPEG, 80),
    ]
    assert [(s.width, s.format) for s in workload("avif").outputs] == [(1200, ImageFormat.AVIF)]


def test_output_names_are_unique_across_workloads_so_one_pipeline_holds_them_all():
    names = [spec.name for spec in ALL_OUTPUTS]
    assert len(names) == len(set(names))


def test_a_crop_needs_a_height_and_a_box_needs_a_crop():
    with pytest.raises(ValueError, match="needs a height"):
        OutputSpec("x", 100, crop=True)
    with pytest.raises(ValueError, match="without a crop"):
        OutputSpec("x", 100, 100)


@pytest.mark.parametrize(
    ("name", "source", "expected"),
    [
        ("thumb", (4000, 3000), (400, 300)),
        ("thumb", (1920, 1080), (400, 300)),
        ("web-1600", (4000, 3000), (1600, 1200)),
        ("web-1600", (1600, 1200), (1600, 1200)),  # never enlarged
        ("web-1600", (1000, 500), (1000, 500)),
        ("web-800", (1920, 1080), (800, 450)),
        ("web-800", (9400, 5290), (800, 450)),
        ("square-200", (3000, 4000), (200, 200)),
        ("avif-1200", (3000, 4000), (1200, 1600)),
    ],
)
def test_expected_size_fits_the_width_or_fills_the_crop_box_without_enlarging(name, source, expected):
    spec = next(s for s in ALL_OUTPUTS if s.name == name)
    assert expected_size(spec, *source) == expected


def test_sizes_match_tolerates_one_pixel_of_rounding_per_side():
    assert sizes_match((800, 451), (800, 450))
    assert not sizes_match((800, 452), (800, 450))


@pytest.mark.parametrize("spec", ALL_OUTPUTS, ids=lambda s: s.name)
def test_thumbor_path_reads_back_as_the_same_output(spec):
    width, height, crop, image_format, quality, image = parse_thumbor_path(thumbor_path(spec, "phone a.jpg"))
    assert (width, height, crop, image_format, quality) == (
        spec.width,
        spec.height,
        spec.crop,
        spec.format,
        spec.quality,
    )
    assert image == "phone%20a.jpg"


@pytest.mark.parametrize("spec", ALL_OUTPUTS, ids=lambda s: s.name)
def test_pixelmesh_variant_asks_the_worker_for_the_same_output(spec):
    variant = pixelmesh_variant(spec)
    thumbnail = variant.steps[0].thumbnail
    assert thumbnail is not None
    assert (variant.name, thumbnail.width, thumbnail.height) == (spec.name, spec.width, spec.height)
    assert thumbnail.crop is (Crop.CENTRE if spec.crop else Crop.NONE)
    assert not thumbnail.enlarge
    assert variant.format.type is OutputType(spec.format.value)
    assert variant.format.effective_quality(variant.format.type) == spec.quality
    flattens = [step.flatten for step in variant.steps[1:] if step.flatten is not None]
    assert bool(flattens) == (spec.format is ImageFormat.JPEG)
    if spec.format is ImageFormat.JPEG:
        assert variant.format.optimize_coding is True
        assert variant.format.progressive is False
    else:
        assert variant.format.effort == spec.effort


@pytest.mark.parametrize("spec", ALL_OUTPUTS, ids=lambda s: s.name)
def test_libvips_and_pillow_options_ask_for_the_same_output(spec):
    width, thumbnail = libvips_thumbnail_options(spec)
    assert width == spec.width
    assert thumbnail["height"] == (spec.height or VIPS_MAX_COORD)
    assert thumbnail["size"] == "down"
    assert thumbnail.get("crop") == ("centre" if spec.crop else None)
    suffix, save = libvips_save_options(spec)
    assert suffix == "." + spec.format.extension
    assert save["Q"] == spec.quality
    assert save["keep"] == "icc"
    pillow_format, pillow = pillow_save_options(spec)
    assert pillow_format == spec.format.value.upper()
    assert pillow["quality"] == spec.quality
    if spec.format is ImageFormat.JPEG:
        assert save["optimize_coding"] is True
        assert pillow["optimize"] is True
    elif spec.format is ImageFormat.WEBP:
        assert save["effort"] == pillow["method"] == spec.effort
    else:
        assert save["compression"] == "av1"
        assert save["effort"] == spec.effort
        assert pillow["speed"] == 9 - spec.effort


def test_the_bench_pipeline_holds_every_output_and_is_a_valid_worker_file():
    spec = pixelmesh_pipeline_spec()
    assert [v.name for v in spec.variants] == [s.name for s in ALL_OUTPUTS]
    revision = PipelineRevision(
        namespace=BENCH_PIPELINE.namespace, name=BENCH_PIPELINE.name, generation=1, spec=spec
    )
    assert PipelineRevision.model_validate_json(revision.model_dump_json(by_alias=True)) == revision
    for item in WORKLOADS:
        assert [spec.variant(name).name for name in variant_names(item)] == variant_names(item)


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("item", WORKLOADS, ids=lambda w: w.name)
def test_draft_request_serves_every_output_and_never_exceeds_the_source(item, source):
    requested = draft_request(item.outputs, *source)
    assert requested[0] <= source[0]
    assert requested[1] <= source[1]
    for spec in item.outputs:
        scale = scale_factor(spec, *source)
        assert requested[0] >= source[0] * scale - 1e-9
        assert requested[1] >= source[1] * scale - 1e-9


@pytest.mark.parametrize("source", SOURCES)
def test_centre_crop_box_has_the_target_aspect_and_is_centred(source):
    left, top, right, bottom = centre_crop_box(*source, 400, 300)
    assert (right - left) / (bottom - top) == pytest.approx(400 / 300)
    assert left == pytest.approx(source[0] - right)
    assert top == pytest.approx(source[1] - bottom)
    assert left >= 0
    assert top >= 0
    assert right <= source[0]
    assert bottom <= source[1]
