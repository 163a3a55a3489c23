"""Placing a box inside another: gravity and focal point offsets, pure integer arithmetic."""

from __future__ import annotations

from pixelmesh.api.pipeline import Gravity

_HORIZONTAL: dict[Gravity, float] = {
    Gravity.CENTRE: 0.5,
    Gravity.NORTH: 0.5,
    Gravity.SOUTH: 0.5,
    Gravity.EAST: 1.0,
    Gravity.NORTH_EAST: 1.0,
    Gravity.SOUTH_EAST: 1.0,
    Gravity.WEST: 0.0,
    Gravity.NORTH_WEST: 0.0,
    Gravity.SOUTH_WEST: 0.0,
}
_VERTICAL: dict[Gravity, float] = {
    Gravity.CENTRE: 0.5,
    Gravity.EAST: 0.5,
    Gravity.WEST: 0.5,
    Gravity.NORTH: 0.0,
    Gravity.NORTH_EAST: 0.0,
    Gravity.NORTH_WEST: 0.0,
    Gravity.SOUTH: 1.0,
    Gravity.SOUTH_EAST: 1.0,
    Gravity.SOUTH_WEST: 1.0,
}


def gravity_offset(
    gravity: Gravity, outer: tuple[int, int], inner: tuple[int, int], margin: int = 0
) -> tuple[int, int]:
    """Top-left corner of an `inner` (w, h) box placed in `outer` by `gravity`, `margin` from the edges.

    A centred axis ignores the margin. The result may be negative when `inner` is larger.
    """
    (outer_w, outer_h), (inner_w, inner_h) = outer, inner
    return (
        _place(_HORIZONTAL[gravity], outer_w, inner_w, margin),
        _place(_VERTICAL[gravity], outer_h, inner_h, margin),
    )


def _place(fraction: float, outer: int, inner: int, margin: int) -> int:
    if fraction == 0.0:
        return margin
    if fraction == 1.0:
        return outer - inner - margin
    return (outer - inner) // 2


def focal_offset(
    focus: tuple[float, float], outer: tuple[int, int], inner: tuple[int, int]
) -> tuple[int, int]:
    """Top-left corner of `inner` centred on `focus` (fractions of `outer`), kept inside `outer`."""
    (fx, fy), (outer_w, outer_h), (inner_w, inner_h) = focus, outer, inner
    left = round(fx * outer_w - inner_w / 2)
    top = round(fy * outer_h - inner_h / 2)
    return (
        min(max(0, left), max(0, outer_w - inner_w)),
        min(max(0, top), max(0, outer_h - inner_h)),
    )
