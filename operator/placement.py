"""Where a pipeline runs: its `regions` resolved against the RegionPools that exist.

A pipeline that names no pool runs in the operator's own region (its cluster and the NATS URL it
was started with). A pipeline that names a pool that does not exist is not an error the API server
can catch (the pool may be created later), so resolution returns what it found and what it missed;
the reconciler reports the missing pools as a condition and keeps the rest running.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pixelmesh.api.resources import ImagePipelineSpec, RegionPoolSpec
from pixelmesh.operator.target import RegionPlacement


@dataclass(frozen=True, slots=True)
class DefaultRegion:
    """The operator's own region, used by pipelines that name no pool."""

    region: str = "local"
    nats_urls: tuple[str, ...] = ("nats://127.0.0.1:4222",)

    def placement(self) -> RegionPlacement:
        return RegionPlacement(region=self.region, pool="", weight=100, nats_urls=self.nats_urls)


@dataclass(frozen=True, slots=True)
class Placements:
    """The regions a pipeline resolves to."""

    regions: tuple[RegionPlacement, ...]
    missing_pools: tuple[str, ...] = ()
    duplicate_regions: tuple[str, ...] = ()
    """Regions named through more than one pool: the second is ignored."""


def resolve_placements(
    spec: ImagePipelineSpec, pools: Mapping[str, RegionPoolSpec], default: DefaultRegion
) -> Placements:
    """The pipeline's regions, in spec order, from the pools by name."""
    if not spec.regions:
        return Placements(regions=(default.placement(),))
    found: list[RegionPlacement] = []
    missing: list[str] = []
    duplicates: list[str] = []
    for entry in spec.regions:
        pool = pools.get(entry.pool)
        if pool is None:
            missing.append(entry.pool)
            continue
        if any(p.region == pool.region for p in found):
            duplicates.append(pool.region)
            continue
        found.append(RegionPlacement.from_pool(entry.pool, pool, entry.weight))
    return Placements(tuple(found), tuple(missing), tuple(duplicates))
