"""The bench images: real photographs from a Debian package, scaled to the sizes users upload.

Problem: synthetic noise decodes and compresses unlike photographs, and photos must come from a
package registry, not the web. Approach: Debian's `mate-backgrounds` (GPL-2+, 46 MB) ships real
photographs of 1600-2560 px and one 5640x3172 painting photographed at high resolution. `apt-get
download` fetches the .deb without installing it, `dpkg-deb -x` unpacks it into the cache, and
libvips derives the bench set from it: 12 MP phone-camera JPEGs (4000x3000, q90, 4:2:0), 2 MP web
JPEGs (1920x1080, q85), a PNG cut-out with a soft alpha edge, and one ~50 MP JPEG for memory.
`IMAGE_PLAN` is the plan (pure data); `ensure_images` builds what is missing.

Caveat: the 12 MP images are upscaled 1.6-2.9x from 2-4 MP originals, which leaves them smoother than
a camera's output and their JPEGs a third of a phone's size. A fixed-seed luminance grain (sigma 6)
stands in for sensor noise and brings them to 3-3.6 MB, as a phone's 12 MP JPEG; the upscaled
painting gets sigma 4. The grain is deterministic, so every run decodes the same bytes.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

logger = logging.getLogger(__name__)

PACKAGE = "mate-backgrounds"
PACKAGE_VERSION = "1.26.0-1"
PACKAGE_ROOT = "usr/share/backgrounds/mate"
PLAN_VERSION = "v2"
"""Bump when the plan or the derivation changes, so cached images are rebuilt."""


class ImageRole(StrEnum):
    """What kind of upload an image stands for."""

    PHONE = "phone-12mp"
    WEB = "web-2mp"
    CUTOUT = "cutout-alpha"
    HUGE = "huge-50mp"


@dataclass(frozen=True, slots=True)
class BenchImage:
    """One derived bench image: made from `source` (a path inside the package's backgrounds)."""

    name: str
    """The file name, also the image's name in thumbor URLs."""
    role: ImageRole
    source: str
    width: int
    height: int
    quality: int | None = None
    """JPEG quality; None for the PNG."""
    grain: float = 0.0
    """Standard deviation of the luminance grain added (a camera's sensor noise), in 8-bit levels."""

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6

    @property
    def has_alpha(self) -> bool:
        return self.role is ImageRole.CUTOUT


IMAGE_PLAN: tuple[BenchImage, ...] = (
    BenchImage("phone-ladybird.jpg", ImageRole.PHONE, "nature/LadyBird.jpg", 4000, 3000, 90, 6.0),
    BenchImage("phone-yellowflower.jpg", ImageRole.PHONE, "nature/YellowFlower.jpg", 4000, 3000, 90, 6.0),
    BenchImage("phone-dune.jpg", ImageRole.PHONE, "nature/Dune.jpg", 4000, 3000, 90, 6.0),
    BenchImage("web-garden.jpg", ImageRole.WEB, "nature/Garden.jpg", 1920, 1080, 85),
    BenchImage("web-twowings.jpg", ImageRole.WEB, "nature/TwoWings.jpg", 1920, 1080, 85),
    BenchImage("web-raindrops.jpg", ImageRole.WEB, "nature/RainDrops.jpg", 1920, 1080, 85),
    BenchImage("cutout-freshflower.png", ImageRole.CUTOUT, "nature/FreshFlower.jpg", 1600, 1200),
    BenchImage("huge-elephants.jpg", ImageRole.HUGE, "abstract/Elephants_5640x3172.jpg", 9400, 5290, 90, 4.0),
)

QUICK_IMAGES: tuple[str, ...] = ("phone-ladybird.jpg", "web-garden.jpg", "cutout-freshflower.png")
"""The quick run's set: one of each everyday kind (no 50 MP image)."""


def select_images(*, quick: bool) -> tuple[BenchImage, ...]:
    """The images a run uses: all of the plan, or the quick subset."""
    if not quick:
        return IMAGE_PLAN
    return tuple(image for image in IMAGE_PLAN if image.name in QUICK_IMAGES)


def cache_root() -> Path:
    """Where the bench keeps its downloads, images and thumbor's venv (`PIXELMESH_BENCH_CACHE`)."""
    override = os.environ.get("PIXELMESH_BENCH_CACHE")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pixelmesh" / "bench"


# --- side effects ----------------------------------------------------------------------------------


def _apt_download(directory: Path) -> Path:
    """Fetch the pinned .deb into `directory` (refreshing apt's lists once if they are missing it)."""
    attempts = [f"{PACKAGE}={PACKAGE_VERSION}", PACKAGE]
    for refreshed in (False, True):
        if refreshed:
            if os.geteuid() != 0:
                break
            logger.warning("apt has no %s yet; running apt-get update once.", PACKAGE)
            subprocess.run(["apt-get", "update", "-q"], check=False, capture_output=True)
        for wanted in attempts:
            done = subprocess.run(
                ["apt-get", "download", "-q", wanted],
                cwd=directory,
                capture_output=True,
                text=True,
                check=False,
            )
            debs = sorted(directory.glob(f"{PACKAGE}_*.deb"))
            if done.returncode == 0 and debs:
                if wanted != attempts[0]:
                    logger.warning("Pinned %s unavailable; using %s.", attempts[0], debs[0].name)
                return debs[0]
    raise RuntimeError(
        f"could not download the Debian package {PACKAGE} with apt-get; "
        "run `apt-get update` (as root) and try again"
    )


def ensure_photos(root: Path) -> Path:
    """The unpacked photographs of the package (downloaded and unpacked on first use)."""
    photos = root / "photos" / PACKAGE
    marker = photos / ".complete"
    if marker.exists():
        return photos
    needed = sorted({image.source for image in IMAGE_PLAN})
    with tempfile.TemporaryDirectory(prefix="pixelmesh-bench-deb-") as temp:
        deb = _apt_download(Path(temp))
        unpacked = Path(temp) / "root"
        subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True)
        for relative in needed:
            target = photos / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(unpacked / PACKAGE_ROOT / relative, target)
        copyright_file = unpacked / "usr/share/doc" / PACKAGE / "copyright"
        if copyright_file.exists():
            shutil.copyfile(copyright_file, photos / "copyright")
    marker.write_text(f"{deb.name}\n")
    logger.info("Unpacked %d photographs of %s into %s.", len(needed), PACKAGE, photos)
    return photos


def _soft_oval_alpha(width: int, height: int) -> object:
    """An alpha channel: opaque inside an oval, fading to transparent at its edge (a cut-out)."""
    import pyvips  # noqa: PLC0415 - only the image builder needs libvips

    xy = pyvips.Image.xyz(width, height)
    dx = (xy[0] - width / 2) / (width / 2)
    dy = (xy[1] - height / 2) / (height / 2)
    distance = (dx * dx + dy * dy) ** 0.5
    alpha = (1.0 - distance) * 255 * 6  # full opacity a sixth of the way in from the oval's edge
    alpha = (alpha < 0).ifthenelse(0, alpha)
    alpha = (alpha > 255).ifthenelse(255, alpha)
    return alpha.cast("uchar")


def build_image(image: BenchImage, photos: Path, target: Path) -> None:
    """Derive one bench image from its photograph with libvips."""
    import pyvips  # noqa: PLC0415

    scaled = pyvips.Image.thumbnail(
        str(photos / image.source), image.width, height=image.height, crop="centre", size="both"
    )
    if image.grain:
        grain = pyvips.Image.gaussnoise(image.width, image.height, sigma=image.grain, mean=0, seed=7)
        scaled = (scaled + grain).cast("uchar")  # one band: the same grain on R, G and B (luminance)
    temp = target.with_suffix(target.suffix + ".tmp")
    if image.has_alpha:
        cutout = scaled.bandjoin(_soft_oval_alpha(image.width, image.height))
        cutout.pngsave(str(temp), compression=6, keep="none")
    else:
        scaled.jpegsave(str(temp), Q=image.quality, subsample_mode="on", keep="none")
    temp.replace(target)


def ensure_images(images: tuple[BenchImage, ...], root: Path | None = None) -> Path:
    """The directory holding `images`, building any that are missing; also thumbor's file root."""
    root = root or cache_root()
    directory = root / "images" / PLAN_VERSION
    missing = [image for image in images if not (directory / image.name).exists()]
    if not missing:
        return directory
    photos = ensure_photos(root)
    directory.mkdir(parents=True, exist_ok=True)
    for image in missing:
        build_image(image, photos, directory / image.name)
        logger.info("Built bench image %s (%dx%d).", image.name, image.width, image.height)
    return directory
