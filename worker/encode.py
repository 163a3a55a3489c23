"""Output encoders: one libvips saver per format, with the spec's options and PixelMesh's defaults.

Defaults: JPEG quality 80, optimised Huffman tables, baseline (not progressive), libvips' automatic
chroma subsampling (4:2:0 below quality 90); PNG zlib level 6, no palette; WebP quality 80,
effort 4; AVIF (HEIF with AV1) quality 60, effort 4; GIF as libvips quantises it; TIFF lossless
(deflate) unless a quality is set, which selects JPEG compression.

JPEG has no alpha channel: an image with alpha is flattened onto white before a JPEG is encoded
(a `flatten` step earlier in the pipeline chooses another colour). Every other format here keeps
alpha (GIF as one-bit transparency).

Encoding is where libvips does the pixel work of the whole pipeline, so `encode_image` is called
under the job's deadline guard (see `deadline`).
"""

from __future__ import annotations

import pyvips

from pixelmesh.api.pipeline import ChromaSubsampling, OutputFormat, OutputType
from pixelmesh.worker.steps.flatten import WHITE, flatten_onto

FORMATS_WITHOUT_ALPHA = frozenset({OutputType.JPEG})
DEFAULT_PNG_COMPRESSION = 6
DEFAULT_EFFORT = 4


def prepare_for(image: pyvips.Image, concrete: OutputType) -> pyvips.Image:
    """`image` made encodable as `concrete`: flattened onto white for a format without alpha."""
    if concrete in FORMATS_WITHOUT_ALPHA and image.hasalpha():
        return flatten_onto(image, WHITE)
    return image


def encode_image(image: pyvips.Image, output: OutputFormat, concrete: OutputType, *, keep: int) -> bytes:
    """Encode a prepared image as `concrete` (the format, or what `auto` resolved to)."""
    quality = output.effective_quality(concrete)
    effort = output.effort if output.effort is not None else DEFAULT_EFFORT
    match concrete:
        case OutputType.JPEG:
            data = image.jpegsave_buffer(
                Q=quality,
                interlace=bool(output.progressive),
                optimize_coding=output.optimize_coding is not False,
                subsample_mode=(output.chroma_subsampling or ChromaSubsampling.AUTO).value,
                keep=keep,
            )
        case OutputType.PNG:
            data = image.pngsave_buffer(
                compression=output.compression if output.compression is not None else DEFAULT_PNG_COMPRESSION,
                palette=bool(output.palette),
                interlace=bool(output.progressive),
                keep=keep,
            )
        case OutputType.WEBP:
            data = image.webpsave_buffer(
                Q=quality, lossless=bool(output.lossless), effort=min(effort, 6), keep=keep
            )
        case OutputType.AVIF:
            data = image.heifsave_buffer(
                compression="av1", Q=quality, lossless=bool(output.lossless), effort=effort, keep=keep
            )
        case OutputType.GIF:
            data = image.gifsave_buffer(interlace=bool(output.progressive), keep=keep)
        case OutputType.TIFF:
            if output.quality is not None:
                data = image.tiffsave_buffer(compression="jpeg", Q=output.quality, keep=keep)
            else:
                data = image.tiffsave_buffer(compression="deflate", predictor="horizontal", keep=keep)
        case OutputType.AUTO:
            raise ValueError("`auto` must be resolved to a concrete format before encoding")
    return bytes(data)
