"""autorotate and stripMetadata: orientation applied, metadata gone or kept in the encoded output."""

from __future__ import annotations

import pytest
import pyvips

from pixelmesh.api.pipeline import PipelineSpec
from pixelmesh.worker.pipeline import run_pipeline
from pixelmesh.worker.steps.strip_metadata import plain_exif_value
from tests import imagegen
from tests.fixtures.images import apply_steps, close_to, decode, pixel, processed

pytestmark = pytest.mark.usefixtures("libvips")

RED = list(map(float, imagegen.RED))
BLUE = list(map(float, imagegen.BLUE))


def has_field(image: pyvips.Image, name: str) -> bool:
    return bool(image.get_typeof(name))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_autorotate_turns_every_exif_orientation_upright(orientation: int):
    source = imagegen.photo_jpeg(80, 60, orientation=orientation)
    image = processed(source, [{"autorotate": {}}], orient=False)
    assert (image.width, image.height) == (80, 60)
    assert close_to(pixel(image, 2, 2), RED, 30)
    assert close_to(pixel(image, 77, 57), BLUE, 30)
    assert not has_field(image, "orientation")


def test_autorotate_after_decoding_turns_the_decoded_image():
    source = imagegen.photo_jpeg(80, 60, orientation=6)
    context = apply_steps(source, [{"toSrgb": {}}, {"autorotate": {}}], orient=False)
    image = context.image.copy_memory()
    assert (image.width, image.height) == (80, 60)
    assert close_to(pixel(image, 2, 2), RED, 30)


def test_autorotate_before_decoding_defers_to_the_decode():
    source = imagegen.photo_jpeg(80, 60, orientation=8)
    context = apply_steps(source, [{"autorotate": {}}], orient=False)
    assert not context.decoded
    assert context.displayed_size() == (80, 60)


def test_without_autorotate_the_stored_pixels_are_kept():
    source = imagegen.photo_jpeg(80, 60, orientation=6)
    image = processed(source, [], orient=False)
    assert (image.width, image.height) == (60, 80)


def run_one(spec: dict, source: bytes) -> pyvips.Image:
    """Encode `source` through a one-variant pipeline and decode the output with its metadata."""
    [output] = run_pipeline(PipelineSpec.model_validate(spec), source)
    return decode(output.data)


@pytest.fixture(scope="module")
def tagged_jpeg() -> bytes:
    return imagegen.photo_with_metadata_jpeg(64, 48)


def test_source_carries_the_metadata_the_strip_tests_expect(tagged_jpeg: bytes):
    image = decode(tagged_jpeg)
    for field in ("icc-profile-data", "exif-data", "xmp-data", "exif-ifd0-Copyright"):
        assert has_field(image, field)


def test_metadata_is_stripped_by_default_but_the_icc_profile_is_kept(tagged_jpeg: bytes):
    image = run_one({"variants": [{"name": "a"}]}, tagged_jpeg)
    assert has_field(image, "icc-profile-data")
    assert not has_field(image, "exif-data")
    assert not has_field(image, "xmp-data")


def test_strip_metadata_can_drop_the_icc_profile_too(tagged_jpeg: bytes):
    spec = {"variants": [{"name": "a", "steps": [{"stripMetadata": {"keepIcc": False}}]}]}
    image = run_one(spec, tagged_jpeg)
    assert not has_field(image, "icc-profile-data")
    assert not has_field(image, "exif-data")


def test_strip_metadata_can_keep_copyright_and_artist_only(tagged_jpeg: bytes):
    spec = {"variants": [{"name": "a", "steps": [{"stripMetadata": {"keepCopyright": True}}]}]}
    image = run_one(spec, tagged_jpeg)
    assert plain_exif_value(str(image.get("exif-ifd0-Copyright"))) == imagegen.COPYRIGHT
    assert plain_exif_value(str(image.get("exif-ifd0-Artist"))) == imagegen.ARTIST
    assert not has_field(image, "xmp-data")
    assert has_field(image, "icc-profile-data")


def test_strip_metadata_off_keeps_everything(tagged_jpeg: bytes):
    image = run_one({"stripMetadata": False, "variants": [{"name": "a"}]}, tagged_jpeg)
    for field in ("icc-profile-data", "exif-data", "xmp-data", "exif-ifd0-Copyright"):
        assert has_field(image, field)


def test_strip_metadata_in_one_variant_does_not_change_another(tagged_jpeg: bytes):
    spec = {
        "stripMetadata": False,
        "variants": [{"name": "bare", "steps": [{"stripMetadata": {"keepIcc": False}}]}, {"name": "full"}],
    }
    bare, full = (decode(o.data) for o in run_pipeline(PipelineSpec.model_validate(spec), tagged_jpeg))
    assert not has_field(bare, "exif-data")
    assert not has_field(bare, "icc-profile-data")
    assert has_field(full, "exif-data")


def test_an_autorotated_output_has_no_orientation_tag_left():
    source = imagegen.photo_jpeg(80, 60, orientation=6)
    image = run_one({"stripMetadata": False, "variants": [{"name": "a"}]}, source)
    assert (image.width, image.height) == (80, 60)
    assert not has_field(image, "orientation") or image.get("orientation") == 1
