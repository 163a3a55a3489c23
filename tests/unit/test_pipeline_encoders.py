"""Each output format: the bytes are what libvips recognises, options change what they should."""

from __future__ import annotations

from typing import Any

import pytest
import pyvips

from pixelmesh.api.pipeline import CONCRETE_EXTENSIONS, CONTENT_TYPES, OutputType, PipelineSpec
from pixelmesh.imaging import find_loader
from pixelmesh.worker.pipeline import EncodedOutput, run_pipeline
from tests import imagegen
from tests.fixtures.images import close_to, decode, pixel

pytestmark = pytest.mark.usefixtures("libvips")

LOADERS = {
    OutputType.JPEG: "VipsForeignLoadJpegBuffer",
    OutputType.PNG: "VipsForeignLoadPngBuffer",
    OutputType.WEBP: "VipsForeignLoadWebpBuffer",
    OutputType.AVIF: "VipsForeignLoadHeifBuffer",
    OutputType.GIF: "VipsForeignLoadNsgifBuffer",
    OutputType.TIFF: "VipsForeignLoadTiffBuffer",
}


def encode(source: bytes, output: dict[str, Any], steps: list[dict[str, Any]] | None = None) -> EncodedOutput:
    spec = PipelineSpec.model_validate(
        {"variants": [{"name": "out", "steps": steps or [], "format": output}]}
    )
    [result] = run_pipeline(spec, source)
    return result


@pytest.mark.parametrize("output_type", list(LOADERS))
def test_each_format_is_encoded_as_itself(photo_jpeg: bytes, output_type: OutputType):
    result = encode(photo_jpeg, {"type": output_type.value}, [{"resize": {"width": 96}}])
    assert find_loader(result.data) == LOADERS[output_type]
    assert result.format is output_type
    assert result.extension == CONCRETE_EXTENSIONS[output_type]
    assert result.content_type == CONTENT_TYPES[output_type]
    image = decode(result.data)
    assert (image.width, image.height) == (result.width, result.height) == (96, 72)


def test_avif_output_is_av1_compressed(photo_jpeg: bytes):
    result = encode(photo_jpeg, {"type": "avif"}, [{"resize": {"width": 64}}])
    assert decode(result.data).get("heif-compression") == "av1"


@pytest.mark.parametrize("output_type", ["jpeg", "webp", "avif"])
def test_lower_quality_makes_smaller_files(photo_jpeg: bytes, output_type: str):
    steps = [{"resize": {"width": 160}}]
    low = encode(photo_jpeg, {"type": output_type, "quality": 20}, steps)
    high = encode(photo_jpeg, {"type": output_type, "quality": 95}, steps)
    assert len(low.data) < len(high.data) * 0.7


def test_default_jpeg_quality_is_between_low_and_high(photo_jpeg: bytes):
    default = len(encode(photo_jpeg, {"type": "jpeg"}).data)
    assert len(encode(photo_jpeg, {"type": "jpeg", "quality": 60}).data) < default
    assert default < len(encode(photo_jpeg, {"type": "jpeg", "quality": 95}).data)


def test_jpeg_progressive_and_chroma_options_reach_the_file(photo_jpeg: bytes):
    plain = decode(encode(photo_jpeg, {"type": "jpeg"}).data)
    assert plain.get("jpeg-multiscan") == 0
    assert plain.get("jpeg-chroma-subsample") == "4:2:0"
    tuned = decode(encode(photo_jpeg, {"type": "jpeg", "progressive": True, "chromaSubsampling": "off"}).data)
    assert tuned.get("jpeg-multiscan") == 1
    assert tuned.get("jpeg-chroma-subsample") == "4:4:4"


def test_jpeg_optimised_coding_is_on_by_default_and_saves_bytes(photo_jpeg: bytes):
    optimised = encode(photo_jpeg, {"type": "jpeg"})
    standard = encode(photo_jpeg, {"type": "jpeg", "optimizeCoding": False})
    assert len(optimised.data) < len(standard.data)


def test_png_compression_level_and_palette(photo_jpeg: bytes):
    steps = [{"resize": {"width": 160}}]
    fast = encode(photo_jpeg, {"type": "png", "compression": 0}, steps)
    small = encode(photo_jpeg, {"type": "png", "compression": 9}, steps)
    assert len(small.data) < len(fast.data)
    palette = encode(photo_jpeg, {"type": "png", "palette": True}, steps)
    assert decode(palette.data).get("palette") == 1
    assert len(palette.data) < len(small.data)


def test_webp_lossless_keeps_every_pixel(photo_jpeg: bytes):
    lossless = decode(encode(photo_jpeg, {"type": "webp", "lossless": True}).data)
    original = decode(photo_jpeg)
    assert (lossless - original).abs().max() == 0


def test_webp_effort_changes_the_encoding(photo_jpeg: bytes):
    quick = encode(photo_jpeg, {"type": "webp", "effort": 0})
    thorough = encode(photo_jpeg, {"type": "webp", "effort": 6})
    assert len(quick.data) != len(thorough.data)


def test_tiff_is_lossless_by_default_and_jpeg_compressed_with_a_quality(photo_jpeg: bytes):
    lossless = encode(photo_jpeg, {"type": "tiff"})
    assert (decode(lossless.data) - decode(photo_jpeg)).abs().max() == 0
    lossy = encode(photo_jpeg, {"type": "tiff", "quality": 50})
    assert len(lossy.data) < len(lossless.data) / 2


@pytest.mark.parametrize("output_type", ["png", "webp", "avif", "tiff"])
def test_formats_with_alpha_keep_transparency(png_alpha: bytes, output_type: str):
    options: dict[str, Any] = {"type": output_type}
    if output_type in ("webp", "avif"):
        options["lossless"] = True
    image = decode(encode(png_alpha, options).data)
    assert image.bands == 4
    assert pixel(image, 60, 5)[3] == 0.0
    assert pixel(image, 5, 5)[3] == 255.0


def test_gif_keeps_transparency_as_one_bit_alpha(png_alpha: bytes):
    image = decode(encode(png_alpha, {"type": "gif"}).data)
    assert image.bands == 4
    assert pixel(image, 60, 5)[3] == 0.0


def test_jpeg_of_a_transparent_image_is_flattened_onto_white(png_alpha: bytes):
    image = decode(encode(png_alpha, {"type": "jpeg", "quality": 95}).data)
    assert image.bands == 3
    assert close_to(pixel(image, 60, 5), [255, 255, 255], 6)
    assert close_to(pixel(image, 5, 5), list(map(float, imagegen.PNG_ALPHA_COLOUR)), 10)


def test_a_flatten_step_chooses_the_colour_under_a_jpeg(png_alpha: bytes):
    image = decode(
        encode(png_alpha, {"type": "jpeg", "quality": 95}, [{"flatten": {"background": "#000000"}}]).data
    )
    assert close_to(pixel(image, 60, 5), [0, 0, 0], 6)


@pytest.mark.parametrize("output_type", ["jpeg", "png", "tiff"])
def test_greyscale_outputs_stay_one_band(photo_jpeg: bytes, output_type: str):
    image = decode(encode(photo_jpeg, {"type": output_type}, [{"grayscale": {}}]).data)
    assert (image.bands, image.interpretation) == (1, "b-w")


def test_greyscale_webp_has_no_grey_mode_but_stays_grey(photo_jpeg: bytes):
    image = decode(encode(photo_jpeg, {"type": "webp"}, [{"grayscale": {}}]).data)
    assert image.bands == 3
    # Lossy WebP stores colour as YUV 4:2:0: grey comes back within one level in every band.
    assert max((image[0] - image[1]).abs().max(), (image[2] - image[1]).abs().max()) <= 1


def test_encoded_outputs_decode_strictly(photo_jpeg: bytes):
    for output_type in LOADERS:
        data = encode(photo_jpeg, {"type": output_type.value}, [{"thumbnail": {"width": 40}}]).data
        image = pyvips.Image.new_from_buffer(data, "", fail_on="warning")
        assert image.avg() > 0
