"""Hostile and broken sources end with the right reason, and a good job right after still works."""

from __future__ import annotations

import resource
from concurrent.futures import ThreadPoolExecutor

import pytest
import pyvips

from pixelmesh.api.messages import FailureReason
from pixelmesh.api.pipeline import InputFormat, InputLimits, PipelineSpec
from pixelmesh.gateway.probe import check_source
from pixelmesh.worker.errors import PermanentError
from pixelmesh.worker.pipeline import classify_libvips_error, run_pipeline
from pixelmesh.worker.source import probe_source
from tests import imagegen
from tests.fixtures.images import BadInput, bad_input_corpus, corpus_limits, decode

pytestmark = pytest.mark.usefixtures("libvips")

CORPUS = bad_input_corpus()


def spec_with(limits: InputLimits) -> PipelineSpec:
    return PipelineSpec.model_validate(
        {
            "input": limits.to_wire(),
            "variants": [
                {"name": "thumb", "steps": [{"thumbnail": {"width": 48}}], "format": {"type": "webp"}},
                {"name": "full", "steps": [{"flop": {}}], "format": {"type": "jpeg"}},
            ],
        }
    )


@pytest.mark.parametrize("bad", CORPUS, ids=[b.name for b in CORPUS])
def test_each_bad_input_fails_with_its_reason_and_the_next_good_job_succeeds(
    bad: BadInput, photo_jpeg: bytes
):
    spec = spec_with(corpus_limits())
    with pytest.raises(PermanentError) as caught:
        run_pipeline(spec, bad.data)
    assert caught.value.reason is bad.reason, caught.value.message
    assert caught.value.message.endswith(".")

    outputs = run_pipeline(spec, photo_jpeg)
    assert [(o.width, o.height) for o in outputs] == [(48, 36), (320, 240)]


REFUSED_FROM_THE_HEADER = [
    # truncated.jpg has a whole header: only decoding it fails, which the gateway does not do.
    *(b for b in CORPUS if b.name != "truncated.jpg"),
    BadInput(
        "truncated.tiff",
        imagegen.encode_as(imagegen.photo_jpeg(96, 64), ".tiff")[:200],
        FailureReason.CORRUPT,
    ),
]


@pytest.mark.parametrize("bad", REFUSED_FROM_THE_HEADER, ids=[b.name for b in REFUSED_FROM_THE_HEADER])
def test_the_gateway_refuses_each_bad_input_with_the_reason_the_worker_gives(bad: BadInput):
    with pytest.raises(PermanentError) as caught:
        probe_source(bad.data, corpus_limits())
    refusal = check_source(bad.data, corpus_limits())
    assert refusal is not None
    assert (caught.value.reason, refusal.code.value) == (bad.reason, bad.reason.value)


def test_the_png_bomb_is_refused_from_its_header_without_allocating_its_pixels():
    bomb = imagegen.png_bomb(20000, 20000)
    assert len(bomb) < 8 * 1024
    peak_before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(PermanentError) as caught:
        probe_source(bomb, InputLimits())
    assert caught.value.reason is FailureReason.TOO_MANY_PIXELS
    assert "20000x20000" in caught.value.message
    # The 400 MB of pixels it declares were never allocated: the process's peak memory barely moved.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before_kib < 50 * 1024


@pytest.mark.parametrize("suffix", [".png", ".webp", ".gif", ".tiff", ".avif", ".jpg"])
def test_truncated_files_of_every_allowed_format_are_corrupt(suffix: str):
    whole = imagegen.encode_as(imagegen.photo_jpeg(96, 64), suffix)
    with pytest.raises(PermanentError) as caught:
        run_pipeline(spec_with(InputLimits()), whole[: len(whole) // 2])
    assert caught.value.reason is FailureReason.CORRUPT


def test_a_format_left_out_of_the_allow_list_is_refused(photo_jpeg: bytes):
    webp = imagegen.encode_as(photo_jpeg, ".webp")
    with pytest.raises(PermanentError) as caught:
        run_pipeline(spec_with(InputLimits(formats=[InputFormat.JPEG])), webp)
    assert caught.value.reason is FailureReason.UNSUPPORTED_FORMAT
    assert "webp" in caught.value.message


def test_avif_and_heif_are_told_apart(photo_jpeg: bytes):
    avif = imagegen.encode_as(photo_jpeg, ".avif")
    with pytest.raises(PermanentError) as caught:
        run_pipeline(spec_with(InputLimits(formats=[InputFormat.HEIF])), avif)
    assert caught.value.reason is FailureReason.UNSUPPORTED_FORMAT
    outputs = run_pipeline(spec_with(InputLimits(formats=[InputFormat.AVIF])), avif)
    assert outputs[1].width == 320


def test_svg_is_rendered_when_a_pipeline_opts_in():
    outputs = run_pipeline(spec_with(InputLimits(formats=[InputFormat.SVG])), imagegen.svg_image())
    assert [(o.width, o.height) for o in outputs] == [(48, 36), (64, 48)]
    assert decode(outputs[1].data).avg() > 0


def test_frames_are_counted_against_max_frames():
    gif = imagegen.animated_gif(16, 16, 4)
    with pytest.raises(PermanentError) as caught:
        run_pipeline(spec_with(InputLimits(max_frames=3)), gif)
    assert caught.value.reason is FailureReason.TOO_MANY_FRAMES
    outputs = run_pipeline(spec_with(InputLimits(max_frames=4)), gif)
    assert [(o.width, o.height) for o in outputs] == [(16, 16), (16, 16)]


def test_pixels_of_every_frame_count_against_max_pixels():
    tiff = imagegen.multipage_tiff(4, 16, 16)
    with pytest.raises(PermanentError) as caught:
        run_pipeline(spec_with(InputLimits(max_frames=10, max_pixels=1000)), tiff)
    assert caught.value.reason is FailureReason.TOO_MANY_PIXELS
    assert "16x16x4" in caught.value.message


def test_a_source_exactly_at_the_limits_is_accepted(photo_jpeg: bytes):
    limits = InputLimits(max_bytes=len(photo_jpeg), max_pixels=320 * 240)
    assert len(run_pipeline(spec_with(limits), photo_jpeg)) == 2


def test_concurrent_jobs_each_keep_their_own_failure_reason(photo_jpeg: bytes):
    # libvips keeps one error buffer for all threads: the reason must not come from its text.
    spec = spec_with(InputLimits())
    sources = [imagegen.truncated_jpeg(), photo_jpeg] * 12

    def reason(source: bytes) -> FailureReason | None:
        try:
            run_pipeline(spec, source)
        except PermanentError as error:
            return error.reason
        return None

    with ThreadPoolExecutor(max_workers=4) as pool:
        reasons = list(pool.map(reason, sources))
    assert reasons == [FailureReason.CORRUPT, None] * 12


def test_a_libvips_error_without_its_text_is_still_corrupt_when_the_source_does_not_decode():
    error = pyvips.Error("unable to call thumbnail_buffer", "")
    assert classify_libvips_error(error, None, corrupt_source=True).reason is FailureReason.CORRUPT
    failed = classify_libvips_error(error, None, corrupt_source=False)
    assert isinstance(failed, PermanentError)
    assert failed.reason is FailureReason.PROCESSING_FAILED
