"""`raw-libvips`: a plain pyvips loop in one process, the limit of our engine on this machine.

Written as a competent pyvips user would: `thumbnail` straight from the file for every output, so
each one decodes with shrink-on-load at the reduction it needs (JPEG at 1/2, 1/4 or 1/8 scale), a
flatten onto white before JPEG, metadata stripped but the ICC profile kept. The operation cache is
off: a service never sees the same request twice in a row, and a cached `thumbnail` would measure
the cache, not the work. Lanes are threads; libvips runs outside the GIL.
"""

from __future__ import annotations

from typing import Any

import pyvips

from bench.contenders.base import SourceImage
from bench.workloads import Workload, libvips_save_options, libvips_thumbnail_options

NAME = "raw-libvips"
WHITE = [255, 255, 255]


def prepare() -> dict[str, Any]:
    """Process-wide libvips settings; what they are, for the report."""
    pyvips.cache_set_max(0)
    return {"operation_cache": 0, "vips_concurrency": pyvips.concurrency_get()}


def process(item: Workload, image: SourceImage) -> list[tuple[str, bytes]]:
    """Every output of `item` for one image, encoded: (variant, bytes)."""
    outputs = []
    for spec in item.outputs:
        width, options = libvips_thumbnail_options(spec)
        thumb = pyvips.Image.thumbnail(str(image.path), width, **options)
        if not spec.format.has_alpha and thumb.hasalpha():
            thumb = thumb.flatten(background=WHITE)
        suffix, save_options = libvips_save_options(spec)
        outputs.append((spec.name, thumb.write_to_buffer(suffix, **save_options)))
    return outputs
