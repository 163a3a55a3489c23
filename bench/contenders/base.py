"""What every contender offers the driver.

A contender owns its processes for one parallelism (`start`/`stop`), names them by role so the probe
can measure them, and runs a workload over a list of images with that many lanes in a closed loop
(each lane starts its next image when the last is done), timing each image around everything the
contender does for it. `describe=True` also reads every output back, for the equivalence check of
the warm-up pass.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.verify import OutputInfo
from bench.workloads import Workload


@dataclass(frozen=True, slots=True)
class SourceImage:
    """A bench image on disk."""

    name: str
    path: Path
    width: int
    height: int

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "width": self.width, "height": self.height}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SourceImage:
        return cls(name=data["name"], path=Path(data["path"]), width=data["width"], height=data["height"])


@dataclass(frozen=True, slots=True)
class RunResult:
    """Latency of each image (seconds, in the order given) and, when asked, what was made."""

    latencies: list[float]
    outputs: dict[str, list[OutputInfo]] = field(default_factory=dict)
    """By image name; only when the run was asked to describe its outputs."""


class Contender(abc.ABC):
    """One way of turning the bench images into the workload's outputs."""

    name: str
    """As printed in tables and ratio lines, e.g. `raw-libvips`."""

    @abc.abstractmethod
    def start(self, parallelism: int) -> None:
        """Start whatever serves `parallelism` concurrent images."""

    def prepare(self, images: Sequence[SourceImage]) -> None:  # noqa: B027 - optional hook
        """Stage the images where the contender reads them, before anything is measured."""

    @abc.abstractmethod
    def processes(self) -> dict[str, list[int]]:
        """The PIDs doing the work, by role (measured for CPU and peak RSS)."""

    @abc.abstractmethod
    def run(self, item: Workload, images: Sequence[SourceImage], *, describe: bool = False) -> RunResult:
        """Make `item`'s outputs for each image, with the parallelism given to `start`."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop every process `start` started (by PID)."""

    def settings(self) -> dict[str, Any]:
        """How this contender is configured, for the report."""
        return {}
