"""The one object every step works on: the image so far, and what is known about the source.

Decoding is deferred until a step needs pixels, because the first pixel step decides how to
decode: a `thumbnail` or `resize` decodes at reduced size (shrink-on-load), while any other step
opens the full image. A JPEG decodes at the largest of libjpeg's 1/2, 1/4 or 1/8 scales that still
covers the box (`draft_load`, Pillow's draft mode; libvips' own thumbnail keeps a factor of two
more); WebP and HEIF go through libvips' thumbnail, which decodes them at the target size. Steps
that only change settings (`autorotate` before decoding, `stripMetadata`) leave the source
undecoded.

Pixels stream top to bottom by default (libvips' sequential access: a few lines in memory). A step
that reads out of order (rotate, flip, turning a sideways JPEG upright) asks for
`random_access_image()`; a streaming pipeline is then materialised in memory once, and a source
that is not yet decoded is opened for random access instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import pyvips

from pixelmesh.imaging import FAIL_ON, SourceInfo
from pixelmesh.worker.deadline import check_deadline, evaluate_within
from pixelmesh.worker.source import load_source, reduced_load

UNBOUNDED = 10_000_000
"""libvips' largest coordinate: a thumbnail box side that never binds."""


def box_scale(
    source: tuple[int, int], box: tuple[int | None, int | None], *, cover: bool, enlarge: bool
) -> float:
    """The scale that fits `source` inside `box` (or covers it), at most 1 unless `enlarge`.

    A side left out of the box does not constrain the scale.
    """
    ratios = [side / whole for side, whole in zip(box, source, strict=True) if side is not None]
    scale = max(ratios) if cover else min(ratios)
    return scale if enlarge else min(scale, 1.0)


_NEEDS_RANDOM_TO_ORIENT = frozenset({3, 4, 5, 6, 7, 8})
"""EXIF orientations whose correction reads the source out of order (all but upright and mirrored)."""


@dataclass(frozen=True, slots=True)
class MetadataPolicy:
    """What metadata the encoded output keeps."""

    strip: bool = True
    """Strip metadata; False keeps everything the source had."""
    keep_icc: bool = True
    keep_copyright: bool = False


@dataclass(slots=True)
class Context:
    """One job's image as it moves through the steps of a branch (shared steps, then a variant)."""

    source: bytes
    info: SourceInfo
    deadline: float | None = None
    orient: bool = True
    """Apply the EXIF orientation when the pixels are first decoded."""
    metadata: MetadataPolicy = dataclasses.field(default_factory=MetadataPolicy)
    streaming: bool = False
    """The current image is computed from a sequential decode and may only be read top to bottom."""
    _image: pyvips.Image | None = None

    @property
    def decoded(self) -> bool:
        """True once the source has been opened for pixels (by a decode or a shrink-on-load)."""
        return self._image is not None

    @property
    def image(self) -> pyvips.Image:
        """The image so far, opening the source (streaming where possible) on first use."""
        if self._image is None:
            self.decode(random_access=False)
        assert self._image is not None
        return self._image

    @image.setter
    def image(self, value: pyvips.Image) -> None:
        self._image = value

    def random_access_image(self) -> pyvips.Image:
        """The image so far, in a form any operation may read in any order."""
        if self._image is None:
            self.decode(random_access=True)
        elif self.streaming:
            self.materialise("materialising the image for a step that reads out of order")
        return self.image

    def decode(self, *, random_access: bool, reduce: Mapping[str, int | float] | None = None) -> None:
        """Open the source (page 0), upright if `orient`. Random access decodes it once, in full.

        `reduce` are loader options that decode it at reduced size (`source.reduced_load`).
        """
        needs_random = random_access or (self.orient and self.info.orientation in _NEEDS_RANDOM_TO_ORIENT)
        image = load_source(self.source, self.info, sequential=not needs_random, reduce=reduce)
        if self.orient:
            image = image.autorot()
        self._image = image
        self.streaming = not needs_random

    def decode_reduced(self, reduce: Mapping[str, int | float], doing: str) -> None:
        """Decode the source once, with the loader's `reduce` options, into memory, upright if `orient`.

        The shared start of several variants that each make a thumbnail of it (`pipeline.share_base`).
        """
        needs_random = self.orient and self.info.orientation in _NEEDS_RANDOM_TO_ORIENT
        image = load_source(self.source, self.info, sequential=not needs_random, reduce=reduce)
        self._image = image.autorot() if self.orient else image
        self.streaming = not needs_random
        self.materialise(doing)

    def materialise(self, doing: str) -> None:
        """Compute the image so far into memory once, so it can be read many times, in any order."""
        self._image = evaluate_within(self.image, self.deadline, doing, lambda image: image.copy_memory())
        self.streaming = False

    def displayed_size(self) -> tuple[int, int]:
        """The current width and height, known from the header while still undecoded."""
        if self._image is None:
            return self.info.displayed_size(autorotate=self.orient)
        return self._image.width, self._image.height

    def thumbnail(
        self, width: int, *, height: int = UNBOUNDED, size: str, crop: str = "none"
    ) -> pyvips.Image:
        """libvips' thumbnail of the image so far, shrinking on load when nothing is decoded yet.

        The box is `width` x `height`; `size` is `down`, `both` or `force`; `crop` is a libvips
        `Interesting` (none, centre, attention, entropy). The result becomes the current image.
        """
        reduce = self.draft_load(width, height, size=size, crop=crop) if self._image is None else None
        if reduce is not None:
            self.decode(random_access=False, reduce=reduce)
        if self._image is None:
            thumb = pyvips.Image.thumbnail_buffer(
                self.source,
                width,
                height=height,
                size=size,
                crop=crop,
                no_rotate=not self.orient,
                # libvips 8.18's `fail_on` argument to thumbnail does not reach the loader; the
                # loader option string does.
                option_string=f"fail_on={FAIL_ON}",
            )
            self.streaming = True
        else:
            thumb = self._image.thumbnail_image(width, height=height, size=size, crop=crop, no_rotate=True)
        self._image = thumb
        return thumb

    def draft_load(
        self, width: int, height: int, *, size: str, crop: str
    ) -> Mapping[str, int | float] | None:
        """JPEG loader options for a thumbnail to this box: the largest DCT shrink that keeps the box.

        libvips' own thumbnail leaves a factor of two between its JPEG shrink and the box; decoding
        at the largest usable shrink instead (Pillow's draft mode) costs 15 % less CPU for a 400x300
        thumbnail of a 12 MP photo, at 46-51 dB PSNR against a full decode (libvips' way: 50-52 dB,
        docs/benchmarks.md). None when libvips' thumbnail does as well (other formats shrink to the
        exact size on load, or not at all).
        """
        cover = crop != "none" or size == "force"
        scale = box_scale(
            self.displayed_size(),
            (width, None if height >= UNBOUNDED else height),
            cover=cover,
            enlarge=size != "down",
        )
        found = reduced_load(self.info, scale)
        if found is None or "shrink" not in found[0]:
            return None
        return found[0]

    def check_deadline(self, doing: str) -> None:
        """Raise `timeout` if the job's deadline has passed."""
        check_deadline(self.deadline, doing)

    def fork(self) -> Context:
        """A context for one variant, starting from this (shared) one. Images are immutable."""
        return dataclasses.replace(self)
