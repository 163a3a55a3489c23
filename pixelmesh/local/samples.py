"""Sample photos for the demo, made with libvips: no files to download or ship.

Each is a small landscape: a sky gradient, a sun, rolling hills shaped by Perlin noise and a film
grain, so encoders and resamplers have real edges, smooth areas and texture to work on (a flat
test card would flatter every codec). The seed makes each image different and reproducible.
"""

from __future__ import annotations

import random
from pathlib import Path

import pyvips

SIZES: tuple[tuple[int, int], ...] = (
    (1600, 1067),
    (1067, 1600),
    (1920, 1080),
    (800, 600),
    (1200, 1200),
    (2400, 1600),
)


def landscape(width: int, height: int, seed: int) -> pyvips.Image:
    """The scene is drawn at a quarter size (smooth shapes lose little) and the grain added at full size."""
    scale = 4
    small = _scene(-(-width // scale), -(-height // scale), seed).resize(scale, kernel="linear")
    grain = pyvips.Image.perlin(width, height, cell_size=2, seed=seed + 2) * 12
    return (small.crop(0, 0, width, height) + grain).cast("uchar").copy(interpretation="srgb")


def _scene(width: int, height: int, seed: int) -> pyvips.Image:
    rng = random.Random(seed)
    top = [rng.randint(40, 120), rng.randint(90, 170), rng.randint(180, 250)]
    bottom = [rng.randint(200, 255), rng.randint(160, 220), rng.randint(120, 200)]
    rows = pyvips.Image.xyz(width, height)[1] / max(height - 1, 1)
    sky = rows * [b - t for t, b in zip(top, bottom, strict=True)] + top

    sun_x, sun_y = rng.uniform(0.2, 0.8) * width, rng.uniform(0.1, 0.35) * height
    radius = min(width, height) * rng.uniform(0.05, 0.09)
    xy = pyvips.Image.xyz(width, height)
    distance = ((xy[0] - sun_x) ** 2 + (xy[1] - sun_y) ** 2) ** 0.5
    near = distance / (radius * 3)
    glow = (near < 1).ifthenelse(1 - near, 0.0) ** 2 + (distance < radius).ifthenelse(1.0, 0.0)
    sky = sky + glow * [255 - c for c in bottom]

    cell = max(16, width // 6)
    ridge = pyvips.Image.perlin(width, height, cell_size=cell, seed=seed)
    horizon = height * rng.uniform(0.55, 0.7)
    land_mask = (xy[1] > (ridge * height * 0.12 + horizon)).ifthenelse(1.0, 0.0).gaussblur(1.5)
    green = [rng.randint(30, 70), rng.randint(90, 140), rng.randint(30, 60)]
    texture = pyvips.Image.perlin(width, height, cell_size=max(4, cell // 8), seed=seed + 1)
    land = texture * 25 + green + (rows * -40)
    return land_mask * land + (1 - land_mask) * sky


def write_samples(directory: Path, count: int) -> list[Path]:
    """`count` sample JPEGs in `directory`, cycling through a handful of sizes and orientations."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        width, height = SIZES[index % len(SIZES)]
        path = directory / f"sample-{index + 1:02d}-{width}x{height}.jpg"
        landscape(width, height, seed=index + 1).jpegsave(str(path), Q=88)
        paths.append(path)
    return paths
