"""The one object every step works on: the image so far, and what is known about the source.

Decoding is deferred until a step needs pixels, because the first pixel step decides how to
decode: a `thumbnail` or `resize` asks libvips for a shrink-on-load thumbnail straight from the
source bytes (a JPEG decodes at 1/2, 1/4 or 1/8 scale, WebP and HEIF at the target size), while
any other step opens the full image. Steps that only change settings (`autorotate` before
decoding, `stripMetadata`) leave the source undecoded.

Pixels stream top to bottom by default (libvips' sequential access: a few lines in memory). A step
that reads out of order (rotate, flip, turning a sideways JPEG upright) asks for
`random_access_image()`; a streaming pipeline is then materialised in memory once, and a source
that is not yet decoded is opened for random access instead.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pyvips

from pixelmesh.imaging import FAIL_ON, SourceInfo
from pixelmesh.worker.deadline import check_deadline, evaluate_within
from pixelmesh.worker.source import load_source

UNBOUNDED = 10_000_000
"""libvips' largest coordinate: a thumbnail box side that never binds."""

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

    def decode(self, *, random_access: bool) -> None:
        """Open the source (page 0), upright if `orient`. Random access decodes it once, in full."""
        needs_random = random_access or (self.orient and self.info.orientation in _NEEDS_RANDOM_TO_ORIENT)
        image = load_source(self.source, self.info, sequential=not needs_random)
        if self.orient:
            image = image.autorot()
        self._image = image
        self.streaming = not needs_random

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

    def check_deadline(self, doing: str) -> None:
        """Raise `timeout` if the job's deadline has passed."""
        check_deadline(self.deadline, doing)

    def fork(self) -> Context:
        """A context for one variant, starting from this (shared) one. Images are immutable."""
        return dataclasses.replace(self)
