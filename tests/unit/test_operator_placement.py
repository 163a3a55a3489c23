"""Placement: a pipeline's regions resolved against the RegionPools that exist."""

from __future__ import annotations

from pixelmesh.api.resources import ImagePipelineSpec, RegionPoolSpec
from pixelmesh.operator.placement import DefaultRegion, resolve_placements

DEFAULT = DefaultRegion(region="home", nats_urls=("nats://home:4222",))


def pool(region: str, replicas: int = 1) -> RegionPoolSpec:
    return RegionPoolSpec.model_validate(
        {"region": region, "nats": {"urls": [f"nats://{region}:4222"], "replicas": replicas}}
    )


def spec(*regions: dict[str, object]) -> ImagePipelineSpec:
    return ImagePipelineSpec.model_validate({"variants": [{"name": "v"}], "regions": list(regions)})


def test_a_pipeline_without_regions_runs_in_the_operators_own_region() -> None:
    placements = resolve_placements(spec(), {"eu": pool("eu-west")}, DEFAULT)
    (only,) = placements.regions
    assert (only.region, only.pool, only.nats_urls) == ("home", "", ("nats://home:4222",))


def test_pools_are_resolved_in_order_with_their_nats_and_weights() -> None:
    pools = {"eu": pool("eu-west", replicas=3), "us": pool("us-east")}
    placements = resolve_placements(
        spec({"pool": "us", "weight": 30}, {"pool": "eu", "weight": 70}), pools, DEFAULT
    )
    assert [(p.region, p.weight) for p in placements.regions] == [("us-east", 30), ("eu-west", 70)]
    assert placements.regions[1].stream_replicas == 3
    assert placements.missing_pools == ()


def test_a_missing_pool_is_reported_and_the_others_kept() -> None:
    placements = resolve_placements(spec({"pool": "eu"}, {"pool": "ghost"}), {"eu": pool("eu-west")}, DEFAULT)
    assert [p.region for p in placements.regions] == ["eu-west"]
    assert placements.missing_pools == ("ghost",)


def test_two_pools_of_one_region_place_it_once() -> None:
    pools = {"eu": pool("eu-west"), "eu-again": pool("eu-west")}
    placements = resolve_placements(spec({"pool": "eu"}, {"pool": "eu-again"}), pools, DEFAULT)
    assert [p.pool for p in placements.regions] == ["eu"]
    assert placements.duplicate_regions == ("eu-west",)
