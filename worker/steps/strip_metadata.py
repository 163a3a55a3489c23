"""Choose what metadata the output keeps: nothing but the ICC profile by default.

Stripping happens when encoding, through the savers' `keep` flags, so it costs nothing here and
a later step cannot bring metadata back. The EXIF copyright and artist survive on request: the
other EXIF fields and the source's EXIF block are dropped, and libvips writes a fresh, minimal
EXIF block holding just those two.
"""

from __future__ import annotations

import re

import pyvips

from pixelmesh.api.pipeline import StripMetadata
from pixelmesh.worker.steps.context import Context, MetadataPolicy
from pixelmesh.worker.steps.step import StepDef

COPYRIGHT_FIELDS = ("exif-ifd0-Copyright", "exif-ifd0-Artist")
# libvips renders an EXIF string tag as `value (value, ASCII, n components, n bytes)`; the value
# itself may contain parentheses (`(c) Studio`), so the echoed copy is matched exactly.
_EXIF_VALUE = re.compile(r"^(?P<value>.*) \((?P=value), ASCII, \d+ components?, \d+ bytes?\)$", re.DOTALL)


def strip_metadata(context: Context, operation: StripMetadata) -> None:
    """Set the output's metadata policy (applied by `finish_metadata` at encode time)."""
    context.metadata = MetadataPolicy(
        strip=True, keep_icc=operation.keep_icc, keep_copyright=operation.keep_copyright
    )


def finish_metadata(image: pyvips.Image, policy: MetadataPolicy) -> tuple[pyvips.Image, int]:
    """The image to save and the savers' `keep` flags that apply `policy`."""
    if not policy.strip:
        return image, int(pyvips.enums.ForeignKeep.ALL)
    keep = int(pyvips.enums.ForeignKeep.NONE)
    if policy.keep_icc:
        keep |= int(pyvips.enums.ForeignKeep.ICC)
    if policy.keep_copyright:
        kept = _copyright_fields(image)
        if kept:
            image = _only_exif_fields(image, kept)
            keep |= int(pyvips.enums.ForeignKeep.EXIF)
    return image, keep


def _copyright_fields(image: pyvips.Image) -> dict[str, str]:
    fields: dict[str, str] = {}
    for name in COPYRIGHT_FIELDS:
        if image.get_typeof(name):
            value = plain_exif_value(str(image.get(name)))
            if value:
                fields[name] = value
    return fields


def plain_exif_value(field: str) -> str:
    """The text of a libvips EXIF string field (`value (value, ASCII, n components, n bytes)`)."""
    match = _EXIF_VALUE.match(field.strip())
    return (match.group("value") if match else field).strip()


def _only_exif_fields(image: pyvips.Image, kept: dict[str, str]) -> pyvips.Image:
    image = image.copy()
    for name in image.get_fields():
        if name == "exif-data" or name.startswith("exif-"):
            image.remove(name)
    for name, value in kept.items():
        image.set_type(pyvips.GValue.gstr_type, name, value)
    return image


STEP = StepDef(name="stripMetadata", model=StripMetadata, run=strip_metadata, needs_pixels=False)
