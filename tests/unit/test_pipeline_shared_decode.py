"""Decoding at reduced size: one decode for several thumbnails, draft-mode JPEG for a single one.

A job with several variants that begin with a thumbnail or resize decodes a JPEG or WebP source
once, at the smallest size that serves all of them, and makes each output from that. The outputs
must be what each variant makes on its own (same size and format, pixel statistics within a grey
level or two: only the resampling path differs). A single JPEG thumbnail decodes at the largest
DCT shrink that keeps its box, and must match libvips' own thumbnail the same way.
"""

from __future__ import annotations

from typing import Any

import pytest
import pyvips

from pixelmesh.api.pipeline import InputLimits, OutputType, PipelineSpec, Step
from pixelmesh.imaging import SourceInfo
from pixelmesh.worker import pipeline
from pixelmesh.worker.pipeline import EncodedOutput, load_scale, run_pipeline
from pixelmesh.worker.source import probe_source, reduced_load
from pixelmesh.worker.steps.context import UNBOUNDED, Context
from tests import imagegen
from tests.fixtures.images import decode

pytestmark = pytest.mark.usefixtures("libvips")

WEB_SET = PipelineSpec.model_validate(
    {
        "variants": [
            {"name": "web-1600", "steps": [{"thumbnail": {"width": 1600}}], "format": {"type": "webp"}},
            {"name": "web-800", "steps": [{"resize": {"width": 800}}], "format": {"type": "jpeg"}},
            {
                "name": "square-200",
                "steps": [{"thumbnail": {"width": 200, "height": 200, "crop": "centre"}}],
                "format": {"type": "jpeg"},
            },
            {
                "name": "banner",
                "steps": [{"resize": {"width": 600, "height": 150, "fit": "cover"}}, {"grayscale": {}}],
                "format": {"type": "png"},
            },
        ]
    }
)


@pytest.fixture(scope="module")
def phone_photo() -> bytes:
    """A 4000x3000 photo-like JPEG, the size of a phone camera's."""
    return imagegen.photo_jpeg(4000, 3000)


def _observed(spec: PipelineSpec, source: bytes, **options: Any) -> tuple[list[EncodedOutput], list[str]]:
    seen: list[str] = []
    outputs = run_pipeline(spec, source, observe_step=lambda name, _seconds: seen.append(name), **options)
    return outputs, seen


def _alone(spec: PipelineSpec, source: bytes) -> list[EncodedOutput]:
    """Each variant run as a job of its own: its private shrink-on-load thumbnail."""
    return [run_pipeline(spec, source, variants=[variant.name])[0] for variant in spec.variants]


def _statistics(image: pyvips.Image) -> tuple[float, float]:
    return image.avg(), image.deviate()


def _assert_equivalent(shared: list[EncodedOutput], alone: list[EncodedOutput]) -> None:
    for together, single in zip(shared, alone, strict=True):
        assert (together.variant, together.format) == (single.variant, single.format)
        assert (together.width, together.height) == (single.width, single.height)
        a, b = decode(together.data), decode(single.data)
        assert (a.width, a.height, a.bands) == (b.width, b.height, b.bands)
        mean_a, deviation_a = _statistics(a)
        mean_b, deviation_b = _statistics(b)
        assert abs(mean_a - mean_b) < 1.5, together.variant
        assert abs(deviation_a - deviation_b) < 1.5, together.variant
        # Same picture, not just the same statistics: the difference is resampling noise.
        assert (a.cast("float") - b.cast("float")).abs().avg() < 3.0, together.variant


def test_a_web_set_of_a_phone_photo_decodes_once_and_matches_separate_thumbnails(phone_photo: bytes):
    shared, seen = _observed(WEB_SET, phone_photo)

    assert seen.count("share") == 1
    assert [(o.width, o.height) for o in shared] == [(1600, 1200), (800, 600), (200, 200), (600, 150)]
    assert [o.format for o in shared] == [OutputType.WEBP, OutputType.JPEG, OutputType.JPEG, OutputType.PNG]
    _assert_equivalent(shared, _alone(WEB_SET, phone_photo))


def test_a_sideways_photo_shares_its_decode_and_every_output_is_upright():
    sideways = imagegen.photo_jpeg(1200, 900, orientation=6)  # stored 900x1200, displayed 1200x900
    shared, seen = _observed(WEB_SET, sideways)

    assert seen.count("share") == 1
    assert [(o.width, o.height) for o in shared] == [(1200, 900), (800, 600), (200, 200), (600, 150)]
    _assert_equivalent(shared, _alone(WEB_SET, sideways))


def test_a_webp_source_shares_a_scaled_decode_that_is_never_smaller_than_an_output():
    source = imagegen.encode_as(imagegen.photo_jpeg(2000, 1500), ".webp", Q=90)
    shared, seen = _observed(WEB_SET, source)

    assert seen.count("share") == 1
    assert [(o.width, o.height) for o in shared] == [(1600, 1200), (800, 600), (200, 200), (600, 150)]
    _assert_equivalent(shared, _alone(WEB_SET, source))


def test_a_single_thumbnail_variant_keeps_its_private_shrink_on_load(phone_photo: bytes):
    _, seen = _observed(WEB_SET, phone_photo, variants=["square-200"])

    assert "share" not in seen


def test_a_decode_too_large_to_hold_lets_each_variant_stream_its_own(
    phone_photo: bytes, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(pipeline, "SHARED_DECODE_MAX_PIXELS", 1000 * 1000)
    outputs, seen = _observed(WEB_SET, phone_photo)

    assert "share" not in seen
    assert [(o.width, o.height) for o in outputs] == [(1600, 1200), (800, 600), (200, 200), (600, 150)]


def _info(loader: str, width: int, height: int) -> SourceInfo:
    return SourceInfo(
        format=next(iter(InputLimits().formats)),
        loader=loader,
        width=width,
        height=height,
        frames=1,
        orientation=1,
        size=1,
    )


@pytest.mark.parametrize(
    ("scale", "options", "size"),
    [
        (0.4, {"shrink": 2}, (2000, 1500)),  # a 1600-wide output: 1/2 serves it, 1/4 would not
        (0.25, {"shrink": 4}, (1000, 750)),
        (0.05, {"shrink": 8}, (500, 375)),
        (0.9, {}, (4000, 3000)),
        (1.5, {}, (4000, 3000)),  # enlarging: the full image
    ],
)
def test_a_jpeg_decodes_at_the_largest_shrink_that_keeps_the_scale(
    scale: float, options: dict[str, int], size: tuple[int, int]
):
    assert reduced_load(_info("VipsForeignLoadJpegBuffer", 4000, 3000), scale) == (options, size)


def test_a_webp_decodes_at_the_scale_with_a_pixel_of_margin_and_a_png_cannot_reduce():
    found = reduced_load(_info("VipsForeignLoadWebpBuffer", 2000, 1000), 0.5)
    assert found is not None
    options, (width, height) = found
    assert 0.5 < float(options["scale"]) <= 0.5 + 1 / 1000
    assert (width, height) >= (1000, 500)
    assert reduced_load(_info("VipsForeignLoadPngBuffer", 2000, 1000), 0.5) is None


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        ({"thumbnail": {"width": 1600}}, 0.4),
        ({"thumbnail": {"width": 400, "height": 400}}, 0.1),  # fits inside: the height binds less
        ({"thumbnail": {"width": 400, "height": 400, "crop": "attention"}}, 400 / 3000),  # covers
        ({"thumbnail": {"width": 400, "height": 400, "gravity": "north"}}, 400 / 3000),
        ({"thumbnail": {"width": 8000}}, 1.0),  # never enlarged
        ({"thumbnail": {"width": 8000, "enlarge": True}}, 2.0),
        ({"resize": {"height": 600}}, 0.2),
        ({"resize": {"width": 800, "height": 800, "fit": "contain"}}, 0.2),
        ({"resize": {"width": 800, "height": 800, "fit": "fill"}}, 800 / 3000),
        ({"blur": {"sigma": 1}}, 1.0),
    ],
)
def test_the_first_pixel_step_says_how_much_of_the_source_it_needs(step: dict[str, Any], expected: float):
    steps = [Step.model_validate({"stripMetadata": {}}), Step.model_validate(step)]
    assert load_scale(steps, (4000, 3000)) == pytest.approx(expected)


def test_the_probe_reports_the_loader_reduced_load_knows(phone_photo: bytes):
    """`reduced_load` keys on libvips' loader class names; the probe must report the same names."""
    info = probe_source(phone_photo, InputLimits())
    assert reduced_load(info, 0.4) == ({"shrink": 2}, (2000, 1500))


def _context(source: bytes) -> Context:
    return Context(source=source, info=probe_source(source, InputLimits()))


@pytest.mark.parametrize(
    ("box", "size", "crop", "expected"),
    [
        ((400, 300), "down", "centre", {"shrink": 8}),  # libvips' own thumbnail would take 4
        ((1600, UNBOUNDED), "down", "none", {"shrink": 2}),  # libvips: 1
        ((800, 800), "down", "none", {"shrink": 4}),  # fits inside: 800x600
        ((3000, UNBOUNDED), "down", "none", None),  # no usable shrink: libvips' thumbnail as before
        ((400, 300), "both", "centre", {"shrink": 8}),
        ((8000, 6000), "force", "none", None),  # enlarging
    ],
)
def test_a_single_jpeg_thumbnail_decodes_at_the_largest_shrink_that_keeps_its_box(
    phone_photo: bytes,
    box: tuple[int, int],
    size: str,
    crop: str,
    expected: dict[str, int] | None,
):
    assert _context(phone_photo).draft_load(box[0], box[1], size=size, crop=crop) == expected


def test_a_webp_or_png_thumbnail_is_left_to_libvips_own_shrink_on_load():
    photo = imagegen.photo_jpeg(1600, 1200)
    for source in (imagegen.encode_as(photo, ".webp"), imagegen.photo_png(1600, 1200)):
        assert _context(source).draft_load(400, 300, size="down", crop="centre") is None


@pytest.mark.parametrize("orientation", [1, 6])
def test_a_draft_decoded_thumbnail_matches_libvips_own_thumbnail(orientation: int):
    source = imagegen.photo_jpeg(4000, 3000, orientation=orientation)
    spec = PipelineSpec.model_validate(
        {
            "variants": [
                {
                    "name": "thumb",
                    "steps": [{"thumbnail": {"width": 400, "height": 300, "crop": "centre"}}],
                    "format": {"type": "jpeg"},
                }
            ]
        }
    )
    (ours,) = run_pipeline(spec, source)
    libvips_own = pyvips.Image.thumbnail_buffer(source, 400, height=300, crop="centre")

    a, b = decode(ours.data), libvips_own.copy_memory()
    assert (a.width, a.height, a.bands) == (b.width, b.height, b.bands) == (400, 300, 3)
    assert abs(a.avg() - b.avg()) < 1.5
    assert abs(a.deviate() - b.deviate()) < 1.5
    assert (a.cast("float") - b.cast("float")).abs().avg() < 3.0
