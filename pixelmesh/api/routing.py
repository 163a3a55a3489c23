"""The routing table: where new jobs of a pipeline go, one entry per pipeline in a replicated KV bucket.

The operator's traffic planner writes an entry (key `streams.routing_key(ref)` in the routing
bucket of its own region, mirrored into every other region) whenever the effective weights, the
drains or the pipeline's generation change; every gateway reads it, and every worker reads the
drains its region must run. The entry carries a `generation` bumped on every change of the
weights, so a reader can tell versions apart and ignore an older one it sees late.

`choose_region` is the gateway's policy, kept pure so it can be tested without a server: the
caller's home region unless its weight is 0 (failed over, drained), otherwise a weighted random
choice among the regions that still carry traffic. No entry means the operator has not routed the
pipeline yet: the home region is the only sensible answer.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from datetime import datetime

from pydantic import Field

from pixelmesh.api.base import ApiModel
from pixelmesh.api.messages import PipelineRef, utc_now

ROUTING_SCHEMA_VERSION = 1


class RegionWeight(ApiModel):
    """One region's share of a pipeline's new jobs."""

    region: str = Field(min_length=1, max_length=63)
    weight: int = Field(ge=0, le=100)
    """Effective weight, an integer percentage (the weights of an entry sum to 100, or all are 0)."""


class Drain(ApiModel):
    """A failed region's jobs, taken by its backup region's workers until the region is back."""

    origin: str = Field(min_length=1, max_length=63)
    """The failed region that accepted the jobs."""
    backup: str = Field(min_length=1, max_length=63)
    """The region whose workers take them."""
    stream: str = Field(min_length=1)
    """Where the jobs are read: the mirror of the origin's stream in the backup (`regional`), or the
    origin's own stream, which outlives it (`geo`)."""
    consumer: str = Field(min_length=1)
    """The durable consumer to read them with."""


class RoutingEntry(ApiModel):
    """The effective weights of one pipeline, as the operator last planned them."""

    v: int = ROUTING_SCHEMA_VERSION
    pipeline: PipelineRef
    generation: int = Field(default=0, ge=0)
    """Bumped on every change of the weights."""
    pipeline_generation: int | None = Field(default=None, ge=0)
    """The ImagePipeline generation the workers run, when the operator knows it."""
    regions: list[RegionWeight] = Field(default_factory=list)
    source_bucket: str = ""
    """Where the gateway stores sources of new jobs; empty: the sources bucket of the region the job
    goes to. Set for `durability: geo`, whose sources must outlive any one region."""
    drains: list[Drain] = Field(default_factory=list)
    """Failed regions' jobs being taken by their backups."""
    updated_at: datetime = Field(default_factory=utc_now)

    def weight_of(self, region: str) -> int | None:
        """The region's weight, or None if the entry does not name it."""
        for entry in self.regions:
            if entry.region == region:
                return entry.weight
        return None


def choose_region(
    table: RoutingEntry | None,
    home_region: str,
    rng: random.Random,
    *,
    reachable: Collection[str] | None = None,
) -> str | None:
    """The region a new job goes to; None when no region may take it.

    `reachable` (when given) restricts the choice to regions the caller can publish to; the home
    region is still preferred among them.
    """
    if table is None or not table.regions:
        if reachable is None or home_region in reachable:
            return home_region
        return None
    candidates = [
        entry
        for entry in table.regions
        if entry.weight > 0 and (reachable is None or entry.region in reachable)
    ]
    if any(entry.region == home_region for entry in candidates):
        return home_region
    if not candidates:
        return None
    (chosen,) = rng.choices(candidates, weights=[entry.weight for entry in candidates], k=1)
    return chosen.region
