"""Region routing through the routing table in NATS KV, as the operator writes it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
from nats.js.errors import KeyNotFoundError

from pixelmesh.api import streams
from pixelmesh.api.routing import RegionWeight, RoutingEntry
from pixelmesh.gateway.app import RunningGateway, serve
from pixelmesh.gateway.config import GatewayConfig
from pixelmesh.gateway.handlers import SERVICE
from pixelmesh.gateway.problems import ProblemError
from pixelmesh.gateway.regions import RegionLink
from pixelmesh.operator.clients.jetstream import ensure_pipeline_resources, ensure_region_buckets
from pixelmesh.operator.jetstream import PipelineStreamSettings, RegionBucketSettings
from tests import imagegen
from tests.fixtures.gateway import API_KEY, GatewayUnderTest


async def provision_regions(gateway: GatewayUnderTest, home: str, others: tuple[str, ...]) -> None:
    """The regions' buckets and job streams, as the operator in `home` makes them."""
    nc = await nats.connect(gateway.nats_url)
    try:
        js = nc.jetstream()
        for region in (home, *others):
            await ensure_region_buckets(js, RegionBucketSettings(region=region, routing_origin=home))
            await ensure_pipeline_resources(js, gateway.pipeline, PipelineStreamSettings(region=region))
    finally:
        await nc.close()


async def write_routing(gateway: GatewayUnderTest, entry: RoutingEntry) -> None:
    """Write the table where the operator does: its own region's bucket (the others mirror it)."""
    nc = await nats.connect(gateway.nats_url)
    try:
        kv = await nc.jetstream().key_value(streams.routing_bucket("us-east"))
        await kv.put(streams.routing_key(gateway.pipeline), entry.model_dump_json(by_alias=True).encode())
    finally:
        await nc.close()


async def mirrored_into(gateway: GatewayUnderTest, region: str) -> None:
    """Until `region`'s copy of the routing table holds the pipeline's entry."""
    nc = await nats.connect(gateway.nats_url)
    try:
        kv = await nc.jetstream().key_value(streams.routing_bucket(region))
        for _ in range(100):
            with contextlib.suppress(KeyNotFoundError):
                await kv.get(streams.routing_key(gateway.pipeline))
                return
            await asyncio.sleep(0.05)
    finally:
        await nc.close()
    raise AssertionError(f"region {region}'s copy of the routing table never got the entry")


async def submit_regions(url: str, gateway: GatewayUnderTest, count: int) -> list[str]:
    path = f"/v1/pipelines/{gateway.pipeline.namespace}/{gateway.pipeline.name}/jobs"
    regions = []
    async with aiohttp.ClientSession(url, headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        for _ in range(count):
            response = await http.post(path, data=imagegen.photo_jpeg(16, 16))
            body = await response.json()
            assert response.status == 202, body
            regions.append(body["region"])
    return regions


async def all_regions_connected(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(100):
            states = (await (await http.get(url + "/readyz")).json())["regions"]
            if all(states.values()):
                return
            await asyncio.sleep(0.05)
    raise AssertionError(f"regions not connected: {states}")


def all_to_us_east(gateway: GatewayUnderTest, generation: int) -> RoutingEntry:
    """The operator's entry once eu-west's weight is 0."""
    return RoutingEntry(
        pipeline=gateway.pipeline,
        generation=generation,
        regions=[RegionWeight(region="eu-west", weight=0), RegionWeight(region="us-east", weight=100)],
    )


@contextlib.asynccontextmanager
async def eu_west_gateway(
    gateway: GatewayUnderTest, tmp_path: Path, **settings: Any
) -> AsyncIterator[RunningGateway]:
    """A gateway at home in eu-west that also publishes to us-east, connected to both.

    Two regions on one server: the routing decision, not the server, is what is checked. The
    operator runs in us-east, so eu-west's gateway reads the table through its mirror.
    """
    config = GatewayConfig(
        port=0,
        regions={"eu-west": (gateway.nats_url,), "us-east": (gateway.nats_url,)},
        home_region="eu-west",
        pipelines=(tmp_path / "pipelines",),
        api_keys=(API_KEY,),
        **settings,
    )
    async with serve(config) as running:
        await all_regions_connected(running.url)
        yield running


async def test_jobs_leave_a_home_region_whose_weight_the_operator_set_to_zero(
    gateway: GatewayUnderTest, tmp_path
):
    await provision_regions(gateway, "us-east", ("eu-west",))
    async with eu_west_gateway(gateway, tmp_path, routing_refresh_seconds=0.1) as running:
        assert set(await submit_regions(running.url, gateway, 3)) == {"eu-west"}

        await write_routing(gateway, all_to_us_east(gateway, generation=2))
        regions: list[str] = []
        for _ in range(50):  # the table is cached: the change shows within a refresh or two
            regions = await submit_regions(running.url, gateway, 1)
            if regions == ["us-east"]:
                break
            await asyncio.sleep(0.05)
        assert regions == ["us-east"]
        assert set(await submit_regions(running.url, gateway, 5)) == {"us-east"}

        async with aiohttp.ClientSession() as http:
            exposition = await (await http.get(running.url + "/metrics")).text()
    assert 'decision="weighted",pipeline="tests/thumbs",region="us-east"' in exposition


async def test_the_first_job_of_a_pipeline_follows_the_table_already_written(
    gateway: GatewayUnderTest, tmp_path
):
    # The pipeline does not run in the gateway's own region: the first job must not go there.
    await provision_regions(gateway, "us-east", ("eu-west",))
    await write_routing(gateway, all_to_us_east(gateway, generation=1))
    await mirrored_into(gateway, "eu-west")
    async with eu_west_gateway(gateway, tmp_path) as running:
        assert await submit_regions(running.url, gateway, 3) == ["us-east"] * 3


async def test_a_job_lookup_skips_a_region_that_went_away_during_it(
    gateway: GatewayUnderTest, tmp_path, monkeypatch
):
    # A region connected when the lookup listed the regions, gone when it asked it (a partition
    # that the client noticed in between): the lookup answers from the others instead of failing.
    await provision_regions(gateway, "us-east", ("eu-west",))
    async with eu_west_gateway(gateway, tmp_path) as running:
        service = running.app[SERVICE]
        [job_region] = await submit_regions(running.url, gateway, 1)
        assert job_region == "eu-west"
        connected = service.regions.home_first()
        gone = RegionLink("us-east", (gateway.nats_url,))  # never connected: its `js` refuses
        monkeypatch.setattr(service.regions, "home_first", lambda: [connected[0], gone])

        assert await service.find("no-such-job") is None

        # A region that is connected and cannot answer (here: it has no buckets) still fails it.
        broken = RegionLink("ap-south", (gateway.nats_url,))
        broken.start()
        try:
            assert await broken.wait_connected(5.0)
            monkeypatch.setattr(service.regions, "home_first", lambda: [connected[0], broken])
            with pytest.raises(ProblemError, match="region ap-south could not"):
                await service.find("no-such-job")
        finally:
            await broken.close()
