"""The executor: variants, formats, shared steps, decode sharing, deadlines and thread safety."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from pixelmesh.api.messages import FailureReason
from pixelmesh.api.pipeline import OutputType, PipelineSpec, Step
from pixelmesh.worker.errors import PermanentError
from pixelmesh.worker.pipeline import run_pipeline, shrinks_on_load
from tests import imagegen
from tests.fixtures.images import close_to, decode, pixel

pytestmark = pytest.mark.usefixtures("libvips")

RED = list(map(float, imagegen.RED))

SPEC = PipelineSpec.model_validate(
    {
        "variants": [
            {
                "name": "thumb",
                "steps": [{"thumbnail": {"width": 64, "height": 64, "crop": "centre"}}],
                "format": {"type": "webp"},
            },
            {
                "name": "medium",
                "steps": [{"resize": {"width": 160}}],
                "format": {"type": "jpeg", "quality": 85},
            },
            {"name": "mirror", "steps": [{"flop": {}}, {"grayscale": {}}], "format": {"type": "png"}},
            {"name": "any", "steps": [{"resize": {"width": 100}}], "format": {"type": "auto"}},
        ]
    }
)


def spec_of(wire: dict[str, Any]) -> PipelineSpec:
    return PipelineSpec.model_validate(wire)


def test_every_variant_is_produced_in_spec_order_with_its_size_and_format(photo_jpeg: bytes):
    outputs = run_pipeline(SPEC, photo_jpeg)
    assert [o.variant for o in outputs] == ["thumb", "medium", "mirror", "any"]
    assert [o.format for o in outputs] == [OutputType.WEBP, OutputType.JPEG, OutputType.PNG, OutputType.JPEG]
    assert [(o.width, o.height) for o in outputs] == [(64, 64), (160, 120), (320, 240), (100, 75)]
    for output in outputs:
        image = decode(output.data)
        assert (image.width, image.height) == (output.width, output.height)
    mirror = decode(outputs[2].data)
    assert mirror.bands == 1
    assert pixel(mirror, 317, 2)[0] < 140  # the red marker, mirrored to the right and greyed


def test_auto_variants_take_the_format_the_caller_resolved(photo_jpeg: bytes):
    outputs = run_pipeline(SPEC, photo_jpeg, variants=["any"], formats={"any": OutputType.AVIF})
    assert [(o.variant, o.format, o.extension, o.content_type) for o in outputs] == [
        ("any", OutputType.AVIF, "avif", "image/avif")
    ]
    assert decode(outputs[0].data).get("heif-compression") == "av1"


def test_a_subset_of_variants_runs_only_those(photo_jpeg: bytes):
    outputs = run_pipeline(SPEC, photo_jpeg, variants=["mirror", "thumb"])
    assert [o.variant for o in outputs] == ["thumb", "mirror"]


def test_an_unknown_variant_fails_permanently_before_any_work(photo_jpeg: bytes):
    with pytest.raises(PermanentError) as caught:
        run_pipeline(SPEC, photo_jpeg, variants=["thumb", "poster"])
    assert caught.value.reason is FailureReason.UNKNOWN_VARIANT
    assert "poster" in caught.value.message


def test_shared_steps_apply_to_every_variant(photo_jpeg: bytes):
    spec = spec_of(
        {
            "steps": [{"crop": {"left": 0, "top": 0, "width": 160, "height": 120}}, {"grayscale": {}}],
            "variants": [
                {"name": "same", "format": {"type": "png"}},
                {"name": "half", "steps": [{"resize": {"width": 80}}], "format": {"type": "png"}},
            ],
        }
    )
    same, half = (decode(o.data) for o in run_pipeline(spec, photo_jpeg))
    assert (same.width, same.height, same.bands) == (160, 120, 1)
    assert (half.width, half.height, half.bands) == (80, 60, 1)


def test_every_branch_is_autorotated_by_default():
    sideways = imagegen.photo_jpeg(160, 120, orientation=6)
    spec = spec_of(
        {
            "variants": [
                {"name": "thumb", "steps": [{"thumbnail": {"width": 80}}], "format": {"type": "png"}},
                {"name": "full", "format": {"type": "png"}},
                {"name": "flipped", "steps": [{"flop": {}}], "format": {"type": "png"}},
            ]
        }
    )
    thumb, full, flipped = (decode(o.data) for o in run_pipeline(spec, sideways))
    assert (thumb.width, thumb.height) == (80, 60)
    assert (full.width, full.height) == (160, 120)
    assert close_to(pixel(thumb, 1, 1), RED, 50)
    assert close_to(pixel(full, 2, 2), RED, 30)
    assert close_to(pixel(flipped, 157, 2), RED, 30)


def test_autorotate_off_keeps_the_stored_orientation():
    sideways = imagegen.photo_jpeg(160, 120, orientation=6)
    [output] = run_pipeline(spec_of({"autorotate": False, "variants": [{"name": "a"}]}), sideways)
    assert (output.width, output.height) == (120, 160)


def test_step_timings_are_reported_by_wire_name(photo_jpeg: bytes):
    seen: list[str] = []
    spec = spec_of(
        {
            "steps": [{"stripMetadata": {}}],
            "variants": [
                {"name": "a", "steps": [{"resize": {"width": 50}}]},
                {"name": "b", "steps": [{"blur": {"sigma": 1}}, {"flip": {}}]},
            ],
        }
    )
    run_pipeline(
        spec, photo_jpeg, observe_step=lambda name, seconds: seen.append(name) if seconds >= 0 else None
    )
    assert seen == ["probe", "stripMetadata", "resize", "encode", "blur", "flip", "encode"]


def test_shared_pixel_steps_are_computed_once_for_several_variants(photo_jpeg: bytes):
    seen: list[str] = []
    spec = spec_of(
        {"steps": [{"grayscale": {}}], "variants": [{"name": "a"}, {"name": "b", "steps": [{"flip": {}}]}]}
    )
    outputs = run_pipeline(spec, photo_jpeg, observe_step=lambda name, _seconds: seen.append(name))
    assert (seen.count("grayscale"), seen.count("share")) == (1, 1)
    assert [decode(o.data).bands for o in outputs] == [1, 1]


def test_variants_that_need_the_full_image_share_one_decode(photo_jpeg: bytes):
    seen: list[str] = []
    spec = spec_of(
        {
            "variants": [
                {"name": "a", "steps": [{"flop": {}}]},
                {"name": "b", "steps": [{"blur": {"sigma": 1}}]},
            ]
        }
    )
    run_pipeline(spec, photo_jpeg, observe_step=lambda name, _seconds: seen.append(name))
    assert seen.count("share") == 1


THUMB_RESIZE_AND_FULL = {
    "variants": [
        {"name": "small", "steps": [{"thumbnail": {"width": 40}}]},
        {"name": "medium", "steps": [{"resize": {"width": 100}}]},
        {"name": "full", "steps": [{"flop": {}}]},
    ]
}
"""Two reduced variants beside a full-size one."""


def test_thumbnail_variants_of_a_png_decode_on_their_own_at_reduced_size():
    """PNG has no shrink-on-load: sharing would hold the full image in memory, so each streams."""
    seen: list[str] = []
    spec = spec_of(THUMB_RESIZE_AND_FULL)
    outputs = run_pipeline(
        spec, imagegen.photo_png(320, 240), observe_step=lambda name, _seconds: seen.append(name)
    )
    assert "share" not in seen
    assert [o.width for o in outputs] == [40, 100, 320]


def test_thumbnail_variants_of_a_jpeg_share_one_reduced_decode_beside_a_full_size_variant(photo_jpeg: bytes):
    seen: list[str] = []
    spec = spec_of(THUMB_RESIZE_AND_FULL)
    outputs = run_pipeline(spec, photo_jpeg, observe_step=lambda name, _seconds: seen.append(name))
    assert seen.count("share") == 1
    assert [(o.width, o.height) for o in outputs] == [(40, 30), (100, 75), (320, 240)]


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([{"thumbnail": {"width": 10}}], True),
        ([{"resize": {"width": 10}}], True),
        ([{"autorotate": {}}, {"stripMetadata": {}}, {"thumbnail": {"width": 10}}], True),
        ([{"flop": {}}, {"thumbnail": {"width": 10}}], False),
        ([{"stripMetadata": {}}], False),
        ([], False),
    ],
)
def test_shrink_on_load_is_chosen_when_the_first_pixel_step_resizes(steps: list[dict], expected: bool):
    assert shrinks_on_load([Step.model_validate(s) for s in steps]) is expected


def test_a_deadline_already_past_fails_with_timeout(photo_jpeg: bytes):
    with pytest.raises(PermanentError) as caught:
        run_pipeline(SPEC, photo_jpeg, deadline=time.monotonic() - 1)
    assert caught.value.reason is FailureReason.TIMEOUT


@pytest.fixture(scope="module")
def big_photo() -> bytes:
    return imagegen.photo_jpeg(2400, 1600, quality=80)


def test_a_deadline_stops_libvips_in_the_middle_of_the_work(big_photo: bytes):
    spec = spec_of(
        {"variants": [{"name": "slow", "steps": [{"blur": {"sigma": 25}}], "format": {"type": "png"}}]}
    )
    started = time.monotonic()
    run_pipeline(spec, big_photo)
    unbounded = time.monotonic() - started

    started = time.monotonic()
    with pytest.raises(PermanentError) as caught:
        run_pipeline(spec, big_photo, deadline=time.monotonic() + unbounded / 10)
    stopped_after = time.monotonic() - started
    assert caught.value.reason is FailureReason.TIMEOUT
    assert "stopped" in caught.value.message
    # Killed part-way: well before the same work runs to completion.
    assert stopped_after < unbounded / 2


def test_a_worker_thread_pool_runs_jobs_concurrently_with_correct_results():
    sources = [imagegen.photo_jpeg(200 + 8 * i, 150 + 6 * i) for i in range(8)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda source: run_pipeline(SPEC, source), sources))
    for index, outputs in enumerate(results):
        width, height = 200 + 8 * index, 150 + 6 * index
        assert [(o.width, o.height) for o in outputs] == [
            (64, 64),
            (160, round(160 * height / width)),
            (width, height),
            (100, round(100 * height / width)),
        ]
