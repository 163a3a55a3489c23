"""Steps that change colours and content: toSrgb, flatten, grayscale, blur, sharpen, watermark."""

from __future__ import annotations

import base64
import itertools

import pytest
import pyvips

from pixelmesh.api.messages import FailureReason
from pixelmesh.api.pipeline import TextMark
from pixelmesh.worker.errors import PermanentError
from pixelmesh.worker.steps.watermark import rendered_text
from tests import imagegen
from tests.fixtures.images import apply_steps, close_to, pixel, processed

pytestmark = pytest.mark.usefixtures("libvips")

RED = list(map(float, imagegen.RED))
GREEN = [0.0, 255.0, 0.0]
ALPHA_COLOUR = list(map(float, imagegen.PNG_ALPHA_COLOUR))


def green_fraction(image: pyvips.Image) -> float:
    """Share of pixels that are clearly green."""
    mask = (image[1] > 180) & (image[0] < 90) & (image[2] < 90)
    return float(mask.avg()) / 255.0


# toSrgb


def test_to_srgb_converts_cmyk_to_three_band_srgb():
    source = imagegen.cmyk_jpeg(64, 48)
    assert processed(source, []).interpretation == "cmyk"
    image = processed(source, [{"toSrgb": {}}])
    assert image.bands == 3
    assert image.interpretation == "srgb"
    assert image.format == "uchar"
    assert close_to(pixel(image, 2, 2), RED, 45)


def test_to_srgb_turns_greyscale_into_three_equal_bands():
    grey = bytes(pyvips.Image.black(32, 32).new_from_image(100).cast("uchar").pngsave_buffer())
    image = processed(grey, [{"toSrgb": {}}])
    assert image.bands == 3
    red, green, blue = pixel(image, 5, 5)
    assert red == green == blue


def test_to_srgb_reduces_sixteen_bit_images_to_eight():
    deep = pyvips.Image.black(16, 16).cast("ushort").new_from_image([30000, 40000, 50000])
    source = bytes(deep.copy(interpretation="rgb16").pngsave_buffer())
    image = processed(source, [{"toSrgb": {}}])
    assert image.format == "uchar"
    assert close_to(pixel(image, 1, 1), [30000 / 257, 40000 / 257, 50000 / 257], 2)


def test_to_srgb_keeps_alpha(png_alpha: bytes):
    image = processed(png_alpha, [{"toSrgb": {}}])
    assert image.bands == 4
    assert pixel(image, 60, 2)[3] == 0.0


# flatten


def test_flatten_composites_transparent_pixels_onto_the_background(png_alpha: bytes):
    image = processed(png_alpha, [{"flatten": {"background": "#ff0000"}}])
    assert image.bands == 3
    assert close_to(pixel(image, 2, 2), ALPHA_COLOUR, 1)
    assert close_to(pixel(image, 60, 2), RED, 1)


def test_flatten_defaults_to_white(png_alpha: bytes):
    image = processed(png_alpha, [{"flatten": {}}])
    assert close_to(pixel(image, 60, 2), [255, 255, 255], 1)


def test_flatten_leaves_an_opaque_image_alone(photo_jpeg: bytes):
    image = processed(photo_jpeg, [{"flatten": {"background": "#00ff00"}}])
    assert image.bands == 3
    assert close_to(pixel(image, 2, 2), RED, 20)


# grayscale


def test_grayscale_leaves_one_band_of_luminance(photo_jpeg: bytes):
    image = processed(photo_jpeg, [{"grayscale": {}}])
    assert image.bands == 1
    assert image.interpretation == "b-w"
    # Pure red is a dark grey; the white-ish parts stay light.
    assert 30 < pixel(image, 2, 2)[0] < 140


def test_grayscale_keeps_alpha(png_alpha: bytes):
    image = processed(png_alpha, [{"grayscale": {}}])
    assert image.bands == 2
    assert pixel(image, 60, 2)[1] == 0.0
    assert pixel(image, 2, 2)[1] == 255.0


# blur and sharpen


def test_blur_smooths_detail(photo_jpeg: bytes):
    original = processed(photo_jpeg, [])
    blurred = processed(photo_jpeg, [{"blur": {"sigma": 3}}])
    assert (blurred.width, blurred.height) == (original.width, original.height)
    assert blurred.sobel().avg() < original.sobel().avg() * 0.6
    # The red marker's hard edge becomes a ramp.
    assert 40 < pixel(blurred, 30, 10)[0] < 230


def test_blur_of_a_transparent_image_does_not_bleed_dark_colour(png_alpha: bytes):
    image = processed(png_alpha, [{"blur": {"sigma": 2}}])
    assert image.bands == 4
    assert image.format == "uchar"
    edge = pixel(image, 33, 20)
    assert 0 < edge[3] < 255
    assert close_to(edge[:3], ALPHA_COLOUR, 3)


def soft_edge_png() -> bytes:
    """A grey 60 | 190 vertical edge, blurred."""
    x = pyvips.Image.xyz(64, 16)[0]
    edge = (x < 32).ifthenelse([60, 60, 60], [190, 190, 190]).cast("uchar").copy(interpretation="srgb")
    return bytes(edge.gaussblur(2).cast("uchar").pngsave_buffer())


def steepest_step_and_range(image: pyvips.Image) -> tuple[float, float, float]:
    row = [pixel(image, x, 8)[0] for x in range(image.width)]
    steepest = max(abs(right - left) for left, right in itertools.pairwise(row))
    return steepest, min(row), max(row)


def test_sharpen_steepens_an_edge_and_overshoots_it():
    source = soft_edge_png()
    original = processed(source, [])
    sharpened = processed(source, [{"sharpen": {"sigma": 2, "amount": 3}}])
    assert sharpened.bands == 3
    assert sharpened.interpretation == "srgb"
    step_before, low_before, high_before = steepest_step_and_range(original)
    step_after, low_after, high_after = steepest_step_and_range(sharpened)
    assert step_after > step_before * 1.3
    assert low_after < low_before
    assert high_after > high_before


# watermark


def overlay_png(width: int, height: int, colour: tuple[int, int, int]) -> str:
    return base64.b64encode(imagegen.solid_png(width, height, colour)).decode()


def test_watermark_image_is_placed_at_the_gravity_and_margin(photo_jpeg: bytes):
    mark = overlay_png(20, 10, (0, 255, 0))
    steps = [{"watermark": {"image": mark, "gravity": "north-west", "margin": 40, "opacity": 1.0}}]
    image = processed(photo_jpeg, steps)
    assert image.bands == 3
    assert close_to(pixel(image, 45, 45), GREEN, 2)
    assert not close_to(pixel(image, 35, 35), GREEN, 60)
    assert not close_to(pixel(image, 65, 45), GREEN, 60)


def test_watermark_opacity_blends_with_the_image(photo_jpeg: bytes):
    mark = overlay_png(20, 20, (0, 255, 0))
    steps = [{"watermark": {"image": mark, "gravity": "north-west", "margin": 0, "opacity": 0.5}}]
    image = processed(photo_jpeg, steps)
    # Half green over the red marker.
    assert close_to(pixel(image, 5, 5), [127, 127, 0], 12)


def test_watermark_default_gravity_is_the_bottom_right_corner(photo_jpeg: bytes):
    mark = overlay_png(20, 20, (0, 255, 0))
    image = processed(photo_jpeg, [{"watermark": {"image": mark, "opacity": 1.0}}])
    margin = 16
    assert close_to(pixel(image, 320 - margin - 10, 240 - margin - 10), GREEN, 2)


def test_watermark_larger_than_the_image_is_scaled_down_to_fit(photo_jpeg: bytes):
    mark = overlay_png(1000, 100, (0, 255, 0))
    image = processed(photo_jpeg, [{"watermark": {"image": mark, "opacity": 1.0, "margin": 10}}])
    assert (image.width, image.height) == (320, 240)
    assert close_to(pixel(image, 160, 220), GREEN, 2)
    assert not close_to(pixel(image, 5, 225), GREEN, 60)


def test_watermark_text_is_drawn_in_its_colour_near_the_gravity(photo_jpeg: bytes):
    text = {"text": "PixelMesh", "font": "sans bold 20", "colour": "#00ff00"}
    steps = [{"watermark": {"text": text, "gravity": "south-east", "opacity": 1.0}}]
    image = processed(photo_jpeg, steps)
    assert image.bands == 3
    assert green_fraction(image.extract_area(160, 160, 160, 80)) > 0.02
    assert green_fraction(image.extract_area(0, 0, 160, 120)) == 0.0


def test_watermark_text_is_rendered_once_for_every_job_of_a_pipeline():
    first = rendered_text(TextMark(text="PixelMesh", colour="#00ff00"))
    again = rendered_text(TextMark(text="PixelMesh", colour="#00ff00"))
    assert again is first
    assert first.bands == 4
    assert rendered_text(TextMark(text="PixelMesh", colour="#ff0000")) is not first


def test_watermark_keeps_the_alpha_of_a_transparent_image(png_alpha: bytes):
    mark = overlay_png(8, 8, (0, 255, 0))
    image = processed(png_alpha, [{"watermark": {"image": mark, "margin": 2, "opacity": 1.0}}])
    assert image.bands == 4
    assert pixel(image, 58, 38)[3] == 255.0
    assert pixel(image, 40, 5)[3] == 0.0


@pytest.mark.parametrize(
    ("overlay", "problem"),
    [
        ("not base64 at all!", "base64"),
        (base64.b64encode(imagegen.photo_jpeg(16, 16)).decode(), "PNG or WebP"),
        (base64.b64encode(imagegen.png_bomb(5000, 5000)).decode(), "larger than"),
    ],
)
def test_an_unusable_watermark_image_fails_permanently(photo_jpeg: bytes, overlay: str, problem: str):
    with pytest.raises(PermanentError) as caught:
        apply_steps(photo_jpeg, [{"watermark": {"image": overlay}}])
    assert caught.value.reason is FailureReason.PROCESSING_FAILED
    assert problem in caught.value.message
