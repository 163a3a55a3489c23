"""Probing a source: what the header says, read without decoding pixels."""

from __future__ import annotations

import pytest

from pixelmesh.api.messages import FailureReason
from pixelmesh.api.pipeline import InputFormat, InputLimits
from pixelmesh.imaging import sniff_signature
from pixelmesh.worker.errors import PermanentError
from pixelmesh.worker.source import probe_source
from tests import imagegen

pytestmark = pytest.mark.usefixtures("libvips")

ALL_FORMATS = InputLimits(formats=list(InputFormat), max_frames=100)


@pytest.mark.parametrize(
    ("suffix", "expected"),
    [
        (".jpg", InputFormat.JPEG),
        (".png", InputFormat.PNG),
        (".webp", InputFormat.WEBP),
        (".avif", InputFormat.AVIF),
        (".gif", InputFormat.GIF),
        (".tiff", InputFormat.TIFF),
    ],
)
def test_probe_names_the_format_and_size_from_the_header(suffix: str, expected: InputFormat):
    data = imagegen.encode_as(imagegen.photo_jpeg(96, 64), suffix)
    info = probe_source(data, ALL_FORMATS)
    assert (info.format, info.width, info.height, info.frames) == (expected, 96, 64, 1)
    assert info.size == len(data)


def test_probe_reads_the_exif_orientation_and_the_displayed_size():
    info = probe_source(imagegen.photo_jpeg(96, 64, orientation=6), ALL_FORMATS)
    assert (info.width, info.height, info.orientation) == (64, 96, 6)
    assert info.displayed_size(autorotate=True) == (96, 64)
    assert info.displayed_size(autorotate=False) == (64, 96)


def test_probe_counts_pages_and_frames():
    assert probe_source(imagegen.multipage_tiff(7), ALL_FORMATS).frames == 7
    gif = probe_source(imagegen.animated_gif(12, 10, 5), ALL_FORMATS)
    assert (gif.frames, gif.width, gif.height, gif.pixels) == (5, 12, 10, 600)


def test_probe_checks_bytes_before_anything_else():
    with pytest.raises(PermanentError) as caught:
        probe_source(imagegen.text_named_jpg(), InputLimits(max_bytes=10))
    assert caught.value.reason is FailureReason.TOO_LARGE


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xff\xd8\xff\xe0", "JPEG"),
        (b"\x89PNG\r\n\x1a\n", "PNG"),
        (b"GIF89a", "GIF"),
        (b"II*\x00", "TIFF"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "WebP"),
        (b"\x00\x00\x00\x1cftypavif", "HEIF/AVIF"),
        (b"hello", None),
        (b"", None),
    ],
)
def test_signatures_tell_a_broken_image_from_something_else(data: bytes, expected: str | None):
    assert sniff_signature(data) == expected
