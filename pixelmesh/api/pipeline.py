"""The image pipeline: input limits, shared steps, and named variants with their output formats.

A step is a Kubernetes-style union: an object with exactly one member set, named for the operation
(`{resize: {width: 400}}`). That shape is a structural schema (no `oneOf` over different property
sets), reads well in YAML, and maps one-to-one onto the worker's step modules.

Defaults follow what a platform team expects from an image CDN: autorotate on, metadata stripped
(the ICC profile kept, so colours survive), JPEG and WebP at quality 80, AVIF at 60, 50 megapixels at
most, and only the raster formats libvips decodes safely allowed as input.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Self

from pydantic import Field, model_validator

from pixelmesh.api.base import ApiModel

# No description here: a type-level description would replace every field's own docstring.
HexColour = Annotated[str, Field(pattern=r"^#([0-9a-fA-F]{6}|[0-9a-fA-F]{8})$")]
Dimension = Annotated[int, Field(ge=1, le=65500)]
VariantName = Annotated[
    str,
    Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", max_length=63),
]


class InputFormat(StrEnum):
    """A source format, named after the libvips loader family that decodes it."""

    JPEG = "jpeg"
    PNG = "png"
    WEBP = "webp"
    AVIF = "avif"
    HEIF = "heif"
    GIF = "gif"
    TIFF = "tiff"
    SVG = "svg"


SAFE_INPUT_FORMATS: tuple[InputFormat, ...] = (
    InputFormat.JPEG,
    InputFormat.PNG,
    InputFormat.WEBP,
    InputFormat.AVIF,
    InputFormat.GIF,
    InputFormat.TIFF,
)
"""Decoders on by default. SVG (a renderer with a large attack surface) and HEIF are opt-in."""


class InputLimits(ApiModel):
    """What a source may be. Checked from the header, before any pixel is decoded."""

    max_bytes: int = Field(default=50 * 1024 * 1024, ge=1, le=2**34)
    """Largest accepted source, in bytes."""
    max_pixels: int = Field(default=50_000_000, ge=1, le=2**40)
    """Largest accepted width x height x frames. A decompression bomb is refused here."""
    max_frames: int = Field(default=1, ge=1, le=10_000)
    """Most pages or animation frames a source may have."""
    formats: list[InputFormat] = Field(default_factory=lambda: list(SAFE_INPUT_FORMATS), min_length=1)
    """Allowed source formats. Anything else is refused before decoding."""


class Gravity(StrEnum):
    """Where to anchor a crop, a pad or an overlay."""

    CENTRE = "centre"
    NORTH = "north"
    NORTH_EAST = "north-east"
    EAST = "east"
    SOUTH_EAST = "south-east"
    SOUTH = "south"
    SOUTH_WEST = "south-west"
    WEST = "west"
    NORTH_WEST = "north-west"


class Fit(StrEnum):
    """How a resize fits the source into the requested box."""

    INSIDE = "inside"
    """Keep the aspect ratio; the result fits inside the box (one side may be shorter)."""
    COVER = "cover"
    """Keep the aspect ratio; fill the box and crop what overflows (centred)."""
    CONTAIN = "contain"
    """Keep the aspect ratio; fit inside and pad to the exact box with the background."""
    FILL = "fill"
    """Stretch to the exact box, ignoring the aspect ratio."""


class Crop(StrEnum):
    """How a thumbnail picks the part of the image to keep."""

    NONE = "none"
    """No crop: the thumbnail fits inside the box."""
    CENTRE = "centre"
    ATTENTION = "attention"
    """Keep the region most likely to draw the eye (skin tones, saturated colour, edges)."""
    ENTROPY = "entropy"
    """Keep the region with the most detail."""


class Autorotate(ApiModel):
    """Turn the image upright from its EXIF orientation, then drop the orientation tag."""


class StripMetadata(ApiModel):
    """Remove metadata (EXIF, XMP, IPTC, comments) from the outputs."""

    keep_icc: bool = True
    """Keep the ICC colour profile, so colours render the same after stripping."""
    keep_copyright: bool = False
    """Keep the EXIF copyright and artist fields."""


class ToSrgb(ApiModel):
    """Convert to the sRGB colour space (from CMYK, a wide-gamut profile, or greyscale)."""


class Flatten(ApiModel):
    """Composite the alpha channel onto a background. JPEG has no alpha: flatten before it."""

    background: HexColour = "#ffffff"
    """The colour under transparent pixels, as #rrggbb or #rrggbbaa."""


class Resize(ApiModel):
    """Resize to a width and/or height."""

    width: Dimension | None = None
    """Target width in pixels. Omitted: derived from height and the aspect ratio."""
    height: Dimension | None = None
    """Target height in pixels. Omitted: derived from width and the aspect ratio."""
    fit: Fit = Fit.INSIDE
    enlarge: bool = False
    """Allow upscaling a source smaller than the box. Off: small sources keep their size."""
    background: HexColour = "#00000000"
    """Padding colour for `fit: contain`, as #rrggbb or #rrggbbaa."""

    @model_validator(mode="after")
    def _needs_a_side(self) -> Self:
        if self.width is None and self.height is None:
            raise ValueError("resize needs width, height, or both")
        if self.fit is not Fit.INSIDE and (self.width is None or self.height is None):
            raise ValueError(f"resize with fit {self.fit.value!r} needs both width and height")
        return self


class FocalPoint(ApiModel):
    """A point of interest, as fractions of the width and height from the top-left corner."""

    x: float = Field(ge=0.0, le=1.0)
    y: float = Field(ge=0.0, le=1.0)


class Thumbnail(ApiModel):
    """Make a thumbnail, decoding large JPEG/WebP/HEIF sources at reduced size (shrink-on-load).

    At most one of `crop` (other than none), `gravity` and `focalPoint` chooses what to keep.
    """

    width: Dimension
    height: Dimension | None = None
    """Omitted: the height follows the aspect ratio."""
    crop: Crop = Crop.NONE
    gravity: Gravity | None = None
    """Fill the box and keep this side of the image."""
    focal_point: FocalPoint | None = None
    """Fill the box and keep this point as close to the centre as the edges allow."""
    enlarge: bool = False
    """Allow upscaling a source smaller than the box."""

    @model_validator(mode="after")
    def _one_anchor(self) -> Self:
        anchors = [self.crop is not Crop.NONE, self.gravity is not None, self.focal_point is not None]
        if sum(anchors) > 1:
            raise ValueError("thumbnail takes at most one of crop, gravity and focalPoint")
        if any(anchors) and self.height is None:
            raise ValueError("a cropping thumbnail needs both width and height")
        return self


class CropBox(ApiModel):
    """Cut out a box. A box that reaches past the edges is clipped to the image."""

    left: int = Field(ge=0)
    top: int = Field(ge=0)
    width: Dimension
    height: Dimension


class Rotate(ApiModel):
    """Rotate clockwise by any angle; corners uncovered by the rotation get the background."""

    angle: float = Field(ge=-360.0, le=360.0)
    background: HexColour = "#00000000"
    """The colour of the uncovered corners, as #rrggbb or #rrggbbaa."""


class Flip(ApiModel):
    """Mirror top to bottom."""


class Flop(ApiModel):
    """Mirror left to right."""


class Blur(ApiModel):
    """Gaussian blur."""

    sigma: float = Field(gt=0.0, le=100.0)
    """Standard deviation of the Gaussian, in pixels."""


class Sharpen(ApiModel):
    """Unsharp mask on the lightness channel, as libvips `sharpen`."""

    sigma: float = Field(default=0.5, gt=0.0, le=10.0)
    """Size of the mask, in pixels."""
    amount: float = Field(default=1.0, ge=0.0, le=10.0)
    """Strength of the sharpening of jagged areas (libvips m2)."""


class Grayscale(ApiModel):
    """Convert to greyscale (alpha is kept)."""


class Pad(ApiModel):
    """Add borders."""

    top: int = Field(default=0, ge=0, le=65500)
    right: int = Field(default=0, ge=0, le=65500)
    bottom: int = Field(default=0, ge=0, le=65500)
    left: int = Field(default=0, ge=0, le=65500)
    background: HexColour = "#00000000"
    """The colour of the borders, as #rrggbb or #rrggbbaa."""


class TextMark(ApiModel):
    """A text watermark."""

    text: str = Field(min_length=1, max_length=256)
    font: str = "sans 24"
    """A Pango font description, e.g. `sans bold 24`."""
    colour: HexColour = "#ffffff"
    """The colour of the text, as #rrggbb or #rrggbbaa."""


class Watermark(ApiModel):
    """Overlay an image or a text."""

    image: str | None = Field(default=None, max_length=1_400_000)
    """A base64-encoded PNG or WebP overlay (1 MiB at most once decoded)."""
    text: TextMark | None = None
    gravity: Gravity = Gravity.SOUTH_EAST
    margin: int = Field(default=16, ge=0, le=4096)
    """Distance from the edges, in pixels."""
    opacity: float = Field(default=0.5, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _one_mark(self) -> Self:
        if (self.image is None) == (self.text is None):
            raise ValueError("watermark needs exactly one of image and text")
        return self


class Step(ApiModel):
    """One operation. Exactly one member is set; its name is the operation."""

    autorotate: Autorotate | None = None
    strip_metadata: StripMetadata | None = None
    to_srgb: ToSrgb | None = None
    flatten: Flatten | None = None
    resize: Resize | None = None
    thumbnail: Thumbnail | None = None
    crop: CropBox | None = None
    rotate: Rotate | None = None
    flip: Flip | None = None
    flop: Flop | None = None
    blur: Blur | None = None
    sharpen: Sharpen | None = None
    grayscale: Grayscale | None = None
    pad: Pad | None = None
    watermark: Watermark | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        set_members = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(set_members) != 1:
            raise ValueError(f"a step sets exactly one operation, got {len(set_members)}: {set_members}")
        return self

    @property
    def name(self) -> str:
        """The operation's wire name, e.g. `stripMetadata`."""
        for field_name, info in type(self).model_fields.items():
            if getattr(self, field_name) is not None:
                return info.alias or field_name
        raise AssertionError("unreachable: validated to have one member")

    @property
    def operation(self) -> ApiModel:
        """The one member that is set."""
        for field_name in type(self).model_fields:
            value = getattr(self, field_name)
            if value is not None:
                assert isinstance(value, ApiModel)
                return value
        raise AssertionError("unreachable: validated to have one member")


class OutputType(StrEnum):
    """An output format. `auto` picks AVIF, WebP or JPEG from the client's `Accept` header."""

    JPEG = "jpeg"
    PNG = "png"
    WEBP = "webp"
    AVIF = "avif"
    GIF = "gif"
    TIFF = "tiff"
    AUTO = "auto"


CONCRETE_EXTENSIONS: dict[OutputType, str] = {
    OutputType.JPEG: "jpg",
    OutputType.PNG: "png",
    OutputType.WEBP: "webp",
    OutputType.AVIF: "avif",
    OutputType.GIF: "gif",
    OutputType.TIFF: "tiff",
}
CONTENT_TYPES: dict[OutputType, str] = {
    OutputType.JPEG: "image/jpeg",
    OutputType.PNG: "image/png",
    OutputType.WEBP: "image/webp",
    OutputType.AVIF: "image/avif",
    OutputType.GIF: "image/gif",
    OutputType.TIFF: "image/tiff",
}
DEFAULT_QUALITY: dict[OutputType, int] = {
    OutputType.JPEG: 80,
    OutputType.WEBP: 80,
    OutputType.AVIF: 60,
    OutputType.TIFF: 80,
}


class ChromaSubsampling(StrEnum):
    """JPEG chroma subsampling. `auto` subsamples below quality 90, as libvips does."""

    AUTO = "auto"
    ON = "on"
    OFF = "off"


class OutputFormat(ApiModel):
    """The encoder and its settings. Options that do not apply to `type` are refused."""

    type: OutputType = OutputType.JPEG
    quality: int | None = Field(default=None, ge=1, le=100)
    """Lossy quality. Default: jpeg 80, webp 80, avif 60."""
    progressive: bool | None = None
    """jpeg: progressive (interlaced) scan; png/gif: interlaced."""
    optimize_coding: bool | None = None
    """jpeg: optimise the Huffman tables (smaller files, a little slower). Default on."""
    chroma_subsampling: ChromaSubsampling | None = None
    """jpeg: chroma subsampling."""
    compression: int | None = Field(default=None, ge=0, le=9)
    """png: zlib compression level. Default 6."""
    palette: bool | None = None
    """png: quantise to an 8-bit palette (much smaller, lossy)."""
    lossless: bool | None = None
    """webp/avif: lossless encoding."""
    effort: int | None = Field(default=None, ge=0, le=9)
    """webp (0-6, default 4) and avif (0-9, default 4): CPU spent for smaller files."""

    @model_validator(mode="after")
    def _options_apply(self) -> Self:
        applies: dict[str, frozenset[OutputType]] = {
            "quality": frozenset(
                {OutputType.JPEG, OutputType.WEBP, OutputType.AVIF, OutputType.TIFF, OutputType.AUTO}
            ),
            "progressive": frozenset({OutputType.JPEG, OutputType.PNG, OutputType.GIF}),
            "optimize_coding": frozenset({OutputType.JPEG}),
            "chroma_subsampling": frozenset({OutputType.JPEG}),
            "compression": frozenset({OutputType.PNG}),
            "palette": frozenset({OutputType.PNG}),
            "lossless": frozenset({OutputType.WEBP, OutputType.AVIF}),
            "effort": frozenset({OutputType.WEBP, OutputType.AVIF, OutputType.AUTO}),
        }
        wrong = [
            type(self).model_fields[name].alias or name
            for name, types in applies.items()
            if getattr(self, name) is not None and self.type not in types
        ]
        if wrong:
            raise ValueError(f"options {wrong} do not apply to format {self.type.value!r}")
        if self.type is OutputType.WEBP and self.effort is not None and self.effort > 6:
            raise ValueError("webp effort is 0-6")
        return self

    def effective_quality(self, concrete: OutputType) -> int | None:
        """The quality the encoder uses for `concrete` (this type, or what `auto` resolved to)."""
        if self.quality is not None:
            return self.quality
        return DEFAULT_QUALITY.get(concrete)


class Variant(ApiModel):
    """One output made from each source: its own steps after the shared ones, and a format."""

    name: VariantName
    """Names the output: it is part of the output key and of the download URL."""
    steps: list[Step] = Field(default_factory=list, max_length=32)
    """Steps of this variant only, run after the shared ones."""
    format: OutputFormat = Field(default_factory=OutputFormat)


class PipelineSpec(ApiModel):
    """What the worker does to each source: limits, shared steps, then each variant."""

    input: InputLimits = Field(default_factory=InputLimits)
    autorotate: bool = True
    """Apply the EXIF orientation before any step (unless a step list starts with `autorotate`)."""
    strip_metadata: bool = True
    """Strip metadata from outputs (the ICC profile is kept). A `stripMetadata` step refines it."""
    steps: list[Step] = Field(default_factory=list, max_length=32)
    """Steps shared by every variant, run once per source where libvips allows."""
    variants: list[Variant] = Field(min_length=1, max_length=32)
    """The outputs made from each source, each with its own steps and format; names are unique."""

    @model_validator(mode="after")
    def _unique_variants(self) -> Self:
        names = [v.name for v in self.variants]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"variant names must be unique, repeated: {dupes}")
        return self

    def variant(self, name: str) -> Variant:
        """The variant called `name`; KeyError if there is none."""
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)
