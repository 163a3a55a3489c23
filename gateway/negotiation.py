"""Picking a concrete format for an `auto` variant from the client's `Accept` header.

Browsers announce what they decode (`image/avif,image/webp,*/*`). We prefer the smallest format the
client names explicitly: AVIF, then WebP; otherwise JPEG, which everything decodes. A wildcard
alone does not earn AVIF: `*/*` is also what `curl` sends, and such clients may not decode it.
Quality values are honoured, `q=0` meaning "not acceptable"; among formats a client rates
differently, the higher rating wins before our preference.

The response varies with the header, so it must carry `Vary: Accept` for caches.
"""

from __future__ import annotations

from pixelmesh.api.pipeline import OutputType

PREFERENCE: tuple[OutputType, ...] = (OutputType.AVIF, OutputType.WEBP)
FALLBACK = OutputType.JPEG
MEDIA_TYPES: dict[str, OutputType] = {
    "image/avif": OutputType.AVIF,
    "image/webp": OutputType.WEBP,
    "image/jpeg": OutputType.JPEG,
}


def parse_accept(header: str) -> dict[str, float]:
    """Media ranges with their quality, lower-cased; malformed q-values count as 1."""
    ranges: dict[str, float] = {}
    for item in header.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if not media:
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    quality = 1.0
        media = media.lower()
        ranges[media] = max(quality, ranges.get(media, 0.0))
    return ranges


def choose_format(accept: str | None) -> OutputType:
    """The format to encode an `auto` variant in for a client that sent `accept`."""
    if not accept:
        return FALLBACK
    ranges = parse_accept(accept)
    explicit = [
        (ranges[media], -PREFERENCE.index(kind) if kind in PREFERENCE else -len(PREFERENCE), kind)
        for media, kind in MEDIA_TYPES.items()
        if ranges.get(media, 0.0) > 0.0
    ]
    if explicit:
        return max(explicit)[2]
    return FALLBACK
