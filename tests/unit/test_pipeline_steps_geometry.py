"""Steps that move pixels: resize, thumbnail, crop, rotate, flip, flop, pad — checked on real pixels.

The test photo has a red square in its top-left corner and a blue one in its bottom-right, so
where those colours land says what the geometry did.
"""

from __future__ import annotations

import pytest
import pyvips

from pixelmesh.api.messages import FailureReason
from pixelmesh.worker.errors import PermanentError
from tests import imagegen
from tests.fixtures.images import apply_steps, close_to, pixel, processed

pytestmark = pytest.mark.usefixtures("libvips")

RED = list(map(float, imagegen.RED))
BLUE = list(map(float, imagegen.BLUE))


def skin_fraction(image: pyvips.Image) -> float:
    """Share of pixels with the subject disc's skin tone (red > green > blue, well apart)."""
    red, green, blue = image[0], image[1], image[2]
    skin = ((red - green) > 30) & ((green - blue) > 20)
    return float(skin.avg()) / 255.0


# resize


@pytest.mark.parametrize(
    ("resize", "size"),
    [
        ({"width": 160}, (160, 120)),
        ({"height": 60}, (80, 60)),
        ({"width": 100, "height": 100}, (100, 75)),
        ({"width": 640}, (320, 240)),
        ({"width": 640, "enlarge": True}, (640, 480)),
        ({"width": 100, "height": 100, "fit": "cover"}, (100, 100)),
        ({"width": 100, "height": 50, "fit": "fill"}, (100, 50)),
        ({"width": 100, "height": 100, "fit": "contain"}, (100, 100)),
        ({"width": 500, "height": 500, "fit": "fill"}, (320, 240)),
        ({"width": 500, "height": 500, "fit": "fill", "enlarge": True}, (500, 500)),
    ],
)
def test_resize_produces_the_size_its_fit_mode_defines(
    photo_jpeg: bytes, resize: dict, size: tuple[int, int]
):
    image = processed(photo_jpeg, [{"resize": resize}])
    assert (image.width, image.height) == size


def test_resize_inside_keeps_the_whole_picture(photo_jpeg: bytes):
    image = processed(photo_jpeg, [{"resize": {"width": 160}}])
    assert close_to(pixel(image, 2, 2), RED, 40)
    assert close_to(pixel(image, 157, 117), BLUE, 40)


def test_resize_cover_crops_the_overflowing_sides(photo_jpeg: bytes):
    image = processed(photo_jpeg, [{"resize": {"width": 100, "height": 100, "fit": "cover"}}])
    # The 4:3 photo is cut to a square around its centre: the corner markers are gone.
    assert not close_to(pixel(image, 1, 1), RED, 60)
    assert not close_to(pixel(image, 98, 98), BLUE, 60)


def test_resize_fill_stretches_without_cropping(photo_jpeg: bytes):
    image = processed(photo_jpeg, [{"resize": {"width": 100, "height": 50, "fit": "fill"}}])
    assert close_to(pixel(image, 1, 1), RED, 40)
    assert close_to(pixel(image, 98, 48), BLUE, 40)


def test_resize_contain_pads_with_a_transparent_background(photo_jpeg: bytes):
    image = processed(photo_jpeg, [{"resize": {"width": 100, "height": 100, "fit": "contain"}}])
    assert image.bands == 4
    assert pixel(image, 50, 2)[3] == 0.0  # 12 rows of padding above the 100x75 picture
    assert pixel(image, 50, 50)[3] == 255.0
    assert close_to(pixel(image, 2, 15)[:3], RED, 40)


def test_resize_contain_pads_with_an_opaque_colour_without_adding_alpha(photo_jpeg: bytes):
    steps = [{"resize": {"width": 100, "height": 100, "fit": "contain", "background": "#00ff00"}}]
    image = processed(photo_jpeg, steps)
    assert image.bands == 3
    assert close_to(pixel(image, 50, 2), [0, 255, 0], 2)


def test_resize_after_a_decoded_step_resizes_the_decoded_image(photo_jpeg: bytes):
    image = processed(photo_jpeg, [{"flop": {}}, {"resize": {"width": 80}}])
    assert (image.width, image.height) == (80, 60)
    assert close_to(pixel(image, 78, 1), RED, 40)


# thumbnail


def test_thumbnail_with_width_only_keeps_the_aspect_ratio(photo_jpeg: bytes):
    image = processed(photo_jpeg, [{"thumbnail": {"width": 80}}])
    assert (image.width, image.height) == (80, 60)


def test_thumbnail_never_enlarges_unless_asked():
    small = imagegen.photo_jpeg(60, 40)
    assert processed(small, [{"thumbnail": {"width": 100}}]).width == 60
    assert processed(small, [{"thumbnail": {"width": 120, "enlarge": True}}]).width == 120


def test_thumbnail_of_a_sideways_jpeg_is_upright_from_shrink_on_load():
    sideways = imagegen.photo_jpeg(320, 240, orientation=6)
    image = processed(sideways, [{"thumbnail": {"width": 80}}])
    assert (image.width, image.height) == (80, 60)
    assert close_to(pixel(image, 2, 2), RED, 50)


def test_thumbnail_without_autorotate_keeps_the_stored_orientation():
    sideways = imagegen.photo_jpeg(320, 240, orientation=6)
    image = processed(sideways, [{"thumbnail": {"width": 60}}], orient=False)
    assert (image.width, image.height) == (60, 80)


def test_thumbnail_attention_crop_keeps_the_subject_a_centre_crop_misses():
    wide = imagegen.photo_jpeg(480, 160)
    centre = processed(wide, [{"thumbnail": {"width": 100, "height": 100, "crop": "centre"}}])
    attention = processed(wide, [{"thumbnail": {"width": 100, "height": 100, "crop": "attention"}}])
    assert (attention.width, attention.height) == (100, 100)
    assert skin_fraction(centre) < 0.01
    assert skin_fraction(attention) > 0.05


def test_thumbnail_entropy_crop_keeps_the_detailed_subject():
    wide = imagegen.photo_jpeg(480, 160)
    image = processed(wide, [{"thumbnail": {"width": 100, "height": 100, "crop": "entropy"}}])
    assert (image.width, image.height) == (100, 100)
    assert skin_fraction(image) > 0.05


@pytest.mark.parametrize(
    ("anchor", "corner", "colour"),
    [
        ({"gravity": "west"}, (2, 2), RED),
        ({"gravity": "north-west"}, (2, 2), RED),
        ({"gravity": "east"}, (97, 97), BLUE),
        ({"gravity": "south-east"}, (97, 97), BLUE),
        ({"focalPoint": {"x": 0.0, "y": 0.0}}, (2, 2), RED),
        ({"focalPoint": {"x": 1.0, "y": 1.0}}, (97, 97), BLUE),
    ],
)
def test_thumbnail_gravity_and_focal_point_choose_the_kept_side(
    photo_jpeg: bytes, anchor: dict, corner: tuple[int, int], colour: list[float]
):
    image = processed(photo_jpeg, [{"thumbnail": {"width": 100, "height": 100, **anchor}}])
    assert (image.width, image.height) == (100, 100)
    assert close_to(pixel(image, *corner), colour, 50)


def test_thumbnail_focal_point_centres_the_point_when_the_edges_allow(photo_jpeg: bytes):
    cx, cy = imagegen.subject_centre(320, 240)
    focus = {"x": cx / 320, "y": cy / 240}
    image = processed(photo_jpeg, [{"thumbnail": {"width": 60, "height": 100, "focalPoint": focus}}])
    assert (image.width, image.height) == (60, 100)
    # The subject disc (its centre ring is skin-toned) sits in the middle of the cut.
    assert skin_fraction(image.extract_area(20, 30, 20, 40)) > 0.5


# crop


def test_crop_cuts_the_box_out(photo_jpeg: bytes):
    source = processed(photo_jpeg, [])
    image = processed(photo_jpeg, [{"crop": {"left": 10, "top": 20, "width": 50, "height": 40}}])
    assert (image.width, image.height) == (50, 40)
    assert pixel(image, 0, 0) == pixel(source, 10, 20)
    assert pixel(image, 49, 39) == pixel(source, 59, 59)


def test_crop_clips_a_box_reaching_past_the_edges(photo_jpeg: bytes):
    image = processed(photo_jpeg, [{"crop": {"left": 300, "top": 200, "width": 100, "height": 100}}])
    assert (image.width, image.height) == (20, 40)
    assert close_to(pixel(image, 19, 39), BLUE, 30)


def test_crop_outside_the_image_fails_permanently(photo_jpeg: bytes):
    with pytest.raises(PermanentError) as caught:
        apply_steps(photo_jpeg, [{"crop": {"left": 400, "top": 0, "width": 10, "height": 10}}])
    assert caught.value.reason is FailureReason.PROCESSING_FAILED
    assert "outside" in caught.value.message


# rotate, flip, flop


@pytest.mark.parametrize(
    ("angle", "size", "red_at"),
    [
        (90, (240, 320), (237, 2)),
        (180, (320, 240), (317, 237)),
        (270, (240, 320), (2, 317)),
        (-90, (240, 320), (2, 317)),
        (-270, (240, 320), (237, 2)),
    ],
)
def test_rotate_by_right_angles_moves_pixels_clockwise(
    photo_jpeg: bytes, angle: float, size: tuple[int, int], red_at: tuple[int, int]
):
    image = processed(photo_jpeg, [{"rotate": {"angle": angle}}])
    assert (image.width, image.height) == size
    assert close_to(pixel(image, *red_at), RED, 30)


def test_rotate_by_any_angle_fills_the_corners_with_the_background(photo_jpeg: bytes):
    image = processed(photo_jpeg, [{"rotate": {"angle": 30, "background": "#00ff00"}}])
    assert image.width > 320
    assert image.height > 240
    assert image.bands == 3
    assert close_to(pixel(image, 0, 0), [0, 255, 0], 2)


def test_rotate_with_a_transparent_background_adds_alpha(photo_jpeg: bytes):
    image = processed(photo_jpeg, [{"rotate": {"angle": 30}}])
    assert image.bands == 4
    assert pixel(image, 0, 0)[3] == 0.0
    assert pixel(image, image.width // 2, image.height // 2)[3] == 255.0


def test_rotate_of_a_transparent_image_does_not_darken_its_edges(png_alpha: bytes):
    image = processed(png_alpha, [{"rotate": {"angle": 10}}])
    colour = [float(v) for v in imagegen.PNG_ALPHA_COLOUR]
    # Partly transparent pixels along the rotated edges keep the colour (premultiplied resampling).
    alpha = image[3]
    partial = (alpha > 40) & (alpha < 215)
    assert partial.avg() > 0
    rgb_where_partial = [
        float((image[band] * (partial / 255)).avg() / (partial.avg() / 255)) for band in range(3)
    ]
    assert close_to(rgb_where_partial, colour, 25)


def test_flip_mirrors_top_to_bottom(photo_jpeg: bytes):
    image = processed(photo_jpeg, [{"flip": {}}])
    assert close_to(pixel(image, 2, 237), RED, 30)
    assert close_to(pixel(image, 317, 2), BLUE, 30)


def test_flop_mirrors_left_to_right(photo_jpeg: bytes):
    image = processed(photo_jpeg, [{"flop": {}}])
    assert close_to(pixel(image, 317, 2), RED, 30)
    assert close_to(pixel(image, 2, 237), BLUE, 30)


def test_an_out_of_order_step_after_a_streaming_one_materialises_the_stream(photo_jpeg: bytes):
    context = apply_steps(photo_jpeg, [{"flop": {}}])
    assert context.streaming
    context = apply_steps(photo_jpeg, [{"flop": {}}, {"flip": {}}])
    assert not context.streaming
    assert close_to(pixel(context.image, 317, 237), RED, 30)


# pad


def test_pad_adds_opaque_borders_of_the_colour(photo_jpeg: bytes):
    steps = [{"pad": {"top": 10, "right": 20, "bottom": 30, "left": 40, "background": "#00ff00"}}]
    image = processed(photo_jpeg, steps)
    assert (image.width, image.height) == (380, 280)
    assert image.bands == 3
    assert close_to(pixel(image, 0, 0), [0, 255, 0], 2)
    assert close_to(pixel(image, 42, 12), RED, 30)


def test_pad_with_the_default_background_is_transparent(photo_jpeg: bytes):
    image = processed(photo_jpeg, [{"pad": {"top": 5, "left": 5}}])
    assert (image.width, image.height) == (325, 245)
    assert image.bands == 4
    assert pixel(image, 0, 0)[3] == 0.0
    assert pixel(image, 10, 10)[3] == 255.0
