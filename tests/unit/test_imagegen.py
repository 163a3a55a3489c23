"""The test image factories make what their names promise (other tests rely on it)."""

from __future__ import annotations

import pytest
import pyvips

from tests import imagegen

pytestmark = pytest.mark.usefixtures("libvips")


def test_photo_jpeg_is_deterministic_and_has_its_markers():
    first, second = imagegen.photo_jpeg(120, 90), imagegen.photo_jpeg(120, 90)
    assert first == second
    image = pyvips.Image.new_from_buffer(first, "")
    assert (image.width, image.height) == (120, 90)
    assert image(2, 2)[0] > 230
    assert image(117, 87)[2] > 230


def test_photo_jpeg_has_structure_not_flat_noise():
    image = pyvips.Image.new_from_buffer(imagegen.photo_jpeg(200, 150), "")
    left, right = image.extract_area(40, 40, 40, 40), image.extract_area(120, 40, 40, 40)
    assert abs(left[0].avg() - right[0].avg()) > 30  # a horizontal gradient
    assert image.deviate() > 20


def test_oriented_photo_stores_turned_pixels_with_the_tag():
    image = pyvips.Image.new_from_buffer(imagegen.photo_jpeg(120, 90, orientation=6), "")
    assert (image.width, image.height, image.get("orientation")) == (90, 120, 6)


def test_png_bomb_is_small_but_declares_a_huge_image():
    bomb = imagegen.png_bomb(20000, 20000)
    assert len(bomb) < 8 * 1024
    header = pyvips.Image.new_from_buffer(bomb, "")
    assert (header.width, header.height) == (20000, 20000)


def test_oversized_jpeg_is_over_the_limit_and_valid():
    data = imagegen.oversized_jpeg(30_000)
    assert len(data) > 30_000
    assert pyvips.Image.new_from_buffer(data, "", fail_on="error").avg() > 0


def test_multipage_tiff_and_animated_gif_have_their_pages():
    tiff = pyvips.Image.new_from_buffer(imagegen.multipage_tiff(6), "")
    gif = pyvips.Image.new_from_buffer(imagegen.animated_gif(10, 10, 3), "")
    assert (tiff.get("n-pages"), gif.get("n-pages")) == (6, 3)
