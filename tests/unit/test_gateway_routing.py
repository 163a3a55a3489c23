"""Choosing the region of a new job from the routing table."""

from __future__ import annotations

import random
from collections import Counter

from pixelmesh.api.messages import PipelineRef
from pixelmesh.api.routing import RegionWeight, RoutingEntry, choose_region

REF = PipelineRef(namespace="shop", name="thumbs")


def table(**weights: int) -> RoutingEntry:
    return RoutingEntry(
        pipeline=REF,
        generation=3,
        regions=[RegionWeight(region=name.replace("_", "-"), weight=w) for name, w in weights.items()],
    )


def test_the_home_region_takes_the_job_while_its_weight_is_positive():
    rng = random.Random(1)
    entry = table(eu_west=10, us_east=90)
    assert {choose_region(entry, "eu-west", rng) for _ in range(200)} == {"eu-west"}


def test_a_home_region_at_weight_zero_sends_jobs_elsewhere_by_weight():
    rng = random.Random(7)
    entry = table(eu_west=0, us_east=75, ap_south=25)
    counts = Counter(choose_region(entry, "eu-west", rng) for _ in range(4000))
    assert counts["eu-west"] == 0
    assert set(counts) == {"us-east", "ap-south"}
    assert 0.70 < counts["us-east"] / 4000 < 0.80


def test_a_caller_whose_home_is_not_in_the_table_is_routed_by_weight():
    rng = random.Random(3)
    entry = table(eu_west=50, us_east=50)
    chosen = {choose_region(entry, "sa-east", rng) for _ in range(200)}
    assert chosen == {"eu-west", "us-east"}


def test_no_table_yet_means_the_home_region():
    assert choose_region(None, "eu-west", random.Random(0)) == "eu-west"
    assert choose_region(table(), "eu-west", random.Random(0)) == "eu-west"


def test_no_region_when_every_weight_is_zero():
    assert choose_region(table(eu_west=0, us_east=0), "eu-west", random.Random(0)) is None


def test_unreachable_regions_are_skipped_even_the_home_one():
    rng = random.Random(5)
    entry = table(eu_west=50, us_east=50)
    assert {choose_region(entry, "eu-west", rng, reachable={"us-east"}) for _ in range(50)} == {"us-east"}
    assert choose_region(entry, "eu-west", rng, reachable=set()) is None
    assert choose_region(None, "eu-west", rng, reachable={"us-east"}) is None


def test_the_entry_round_trips_in_camel_case_on_the_wire():
    entry = RoutingEntry(
        pipeline=REF, generation=4, pipeline_generation=2, regions=[RegionWeight(region="eu", weight=100)]
    )
    wire = entry.to_wire()
    assert wire["pipelineGeneration"] == 2
    assert RoutingEntry.model_validate_json(entry.model_dump_json(by_alias=True)) == entry
    assert entry.weight_of("eu") == 100
    assert entry.weight_of("us") is None
