"""`pillow`: a plain Pillow loop, what a Python team writes first (and writes well).

Decodes each image once, asking JPEG's draft mode for the smallest scale (1/2, 1/4, 1/8) that still
serves the largest output, then makes every output from that decoded image: a centred crop box for
cropping outputs, LANCZOS with `reducing_gap=2.0` (a box reduction, then the filter: what
`Image.thumbnail` does), a paste onto white before JPEG, the ICC profile kept. Lanes are threads:
Pillow releases the GIL while decoding, resampling and encoding.
"""

from __future__ import annotations

import io
from typing import Any

import PIL
from PIL import Image

from bench.contenders.base import SourceImage
from bench.workloads import Workload, centre_crop_box, draft_request, expected_size, pillow_save_options

NAME = "pillow"
WHITE = (255, 255, 255)


def prepare() -> dict[str, Any]:
    """Nothing process-wide to set; the version, for the report."""
    return {"pillow": PIL.__version__}


def _flattened(image: Image.Image) -> Image.Image:
    if image.mode != "RGBA":
        return image.convert("RGB") if image.mode != "RGB" else image
    background = Image.new("RGB", image.size, WHITE)
    background.paste(image, mask=image.getchannel("A"))
    return background


def process(item: Workload, image: SourceImage) -> list[tuple[str, bytes]]:
    """Every output of `item` for one image, encoded: (variant, bytes)."""
    outputs = []
    with Image.open(image.path) as source:
        source_size = source.size
        source.draft("RGB", draft_request(item.outputs, *source_size))
        source.load()
        icc_profile = source.info.get("icc_profile")
        for spec in item.outputs:
            size = expected_size(spec, *source_size)
            box = None
            if spec.crop:
                assert spec.height is not None
                box = centre_crop_box(source.width, source.height, spec.width, spec.height)
            resized = source.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=2.0)
            if not spec.format.has_alpha:
                resized = _flattened(resized)
            file_format, options = pillow_save_options(spec)
            if icc_profile:
                options["icc_profile"] = icc_profile
            buffer = io.BytesIO()
            resized.save(buffer, file_format, **options)
            outputs.append((spec.name, buffer.getvalue()))
    return outputs
