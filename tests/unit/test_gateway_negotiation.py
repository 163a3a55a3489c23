"""Choosing AVIF, WebP or JPEG for an `auto` variant from `Accept`."""

from __future__ import annotations

import pytest

from pixelmesh.api.pipeline import OutputType
from pixelmesh.gateway.negotiation import choose_format, parse_accept


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("image/avif,image/webp,image/apng,image/*,*/*;q=0.8", OutputType.AVIF),
        ("image/webp,*/*", OutputType.WEBP),
        ("image/avif;q=0,image/webp", OutputType.WEBP),
        ("image/avif;q=0.5,image/webp;q=0.9", OutputType.WEBP),
        ("image/jpeg,image/avif;q=0.9", OutputType.JPEG),
        ("*/*", OutputType.JPEG),
        ("image/*", OutputType.JPEG),
        ("", OutputType.JPEG),
        (None, OutputType.JPEG),
        ("IMAGE/AVIF", OutputType.AVIF),
        ("image/avif;q=banana", OutputType.AVIF),
        (",,;", OutputType.JPEG),
    ],
)
def test_the_format_follows_what_the_client_names(accept: str | None, expected: OutputType):
    assert choose_format(accept) is expected


def test_quality_values_are_clamped_and_the_best_mention_wins():
    assert parse_accept("image/webp;q=2, image/webp;q=0.1, text/html;q=-1") == {
        "image/webp": 1.0,
        "text/html": 0.0,
    }
