"""Refusing sources from their header: formats, pixels, frames, bytes."""

from __future__ import annotations

from pixelmesh.api.http import ProblemCode
from pixelmesh.api.pipeline import InputFormat, InputLimits
from pixelmesh.gateway.probe import check_source, sniff_families
from tests import imagegen


def test_a_photo_within_the_limits_passes():
    assert check_source(imagegen.photo_jpeg(64, 48), InputLimits()) is None
    assert check_source(imagegen.photo_png(64, 48), InputLimits()) is None


def test_a_bomb_is_refused_from_its_header_with_its_dimensions():
    refusal = check_source(imagegen.png_bomb(5000, 5000), InputLimits(max_pixels=1_000_000))
    assert refusal is not None
    assert refusal.code is ProblemCode.TOO_MANY_PIXELS
    assert "5000x5000" in refusal.detail


def test_formats_outside_the_pipeline_list_are_refused_before_parsing():
    jpeg_only = InputLimits(formats=[InputFormat.JPEG])
    refusal = check_source(imagegen.photo_png(16, 16), jpeg_only)
    assert refusal is not None
    assert refusal.code is ProblemCode.UNSUPPORTED_FORMAT
    svg = check_source(imagegen.svg_image(), InputLimits())
    assert svg is not None
    assert svg.code is ProblemCode.UNSUPPORTED_FORMAT
    text = check_source(b"hello, not an image", InputLimits())
    assert text is not None
    assert text.code is ProblemCode.UNSUPPORTED_FORMAT


def test_too_many_frames_and_too_many_bytes_are_refused():
    pages = check_source(imagegen.multipage_tiff(5), InputLimits(max_frames=2))
    assert pages is not None
    assert pages.code is ProblemCode.TOO_MANY_FRAMES
    large = check_source(imagegen.photo_jpeg(64, 64), InputLimits(max_bytes=100))
    assert large is not None
    assert large.code is ProblemCode.TOO_LARGE


def test_avif_and_heif_share_a_loader_and_are_told_apart():
    avif = imagegen.encode_as(imagegen.photo_png(32, 32), ".avif")
    assert sniff_families(avif) == (InputFormat.AVIF, InputFormat.HEIF)
    assert check_source(avif, InputLimits(formats=[InputFormat.AVIF])) is None
    refusal = check_source(avif, InputLimits(formats=[InputFormat.HEIF]))
    assert refusal is not None
    assert refusal.code is ProblemCode.UNSUPPORTED_FORMAT
