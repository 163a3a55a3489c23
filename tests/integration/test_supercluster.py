"""Three regions on loopback: streams placed by region, mirrored across, surviving a region's loss.

The supercluster also runs the `geo` cluster stretched over the three regions, where an R3 stream
keeps one replica per region (`durability: geo`).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import nats
import pytest
from nats.js.api import PubAck, StreamConfig, StreamSource
from nats.js.client import JetStreamContext

from e2e.regions import GEO_CLUSTER, Supercluster

pytestmark = pytest.mark.slow
T = TypeVar("T")


@pytest.fixture(scope="module")
def supercluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supercluster]:
    with Supercluster(["eu", "us", "ap"], tmp_path_factory.mktemp("regions"), geo=True) as sc:
        yield sc


async def jetstream(url: str) -> tuple[nats.NATS, JetStreamContext]:
    nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0)
    return nc, nc.jetstream(timeout=5)


async def retry(attempt: Callable[[], Awaitable[T]], within: float = 30.0) -> T:
    """Retry while JetStream elects leaders or catches up (it answers errors until then)."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await attempt()
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def test_streams_are_placed_in_the_named_region(supercluster: Supercluster) -> None:
    nc, js = await jetstream(supercluster.url("eu"))
    try:
        for region in supercluster.regions:
            info = await retry(
                lambda r=region: js.add_stream(
                    StreamConfig(name=f"PLACED_{r}", subjects=[f"placed.{r}"], placement={"cluster": r})
                )
            )
            assert info.cluster is not None
            assert info.cluster.name == region
    finally:
        await nc.close()


async def test_a_mirror_in_another_region_survives_the_loss_of_the_origin(supercluster: Supercluster) -> None:
    """What `durability: regional` relies on: the backup region keeps every mirrored job."""
    nc, js = await jetstream(supercluster.url("ap"))
    try:
        await retry(
            lambda: js.add_stream(
                StreamConfig(name="ORIGIN", subjects=["origin.jobs"], placement={"cluster": "ap"})
            )
        )
        for i in range(200):
            ack = await js.publish("origin.jobs", f"job-{i}".encode(), headers={"Nats-Msg-Id": f"job-{i}"})
            assert not ack.duplicate
        await retry(
            lambda: js.add_stream(
                StreamConfig(
                    name="ORIGIN_MIRROR", mirror=StreamSource(name="ORIGIN"), placement={"cluster": "us"}
                )
            )
        )

        async def caught_up() -> None:
            info = await js.stream_info("ORIGIN_MIRROR")
            assert info.state.messages == 200

        await retry(caught_up)
    finally:
        await nc.close()

    supercluster.lose("ap")
    try:
        nc, js = await jetstream(supercluster.url("us"))
        try:
            info = await retry(lambda: js.stream_info("ORIGIN_MIRROR"))
            assert info.state.messages == 200
            sub = await retry(lambda: js.pull_subscribe("origin.jobs", "drain", stream="ORIGIN_MIRROR"))
            seen: set[bytes] = set()
            while len(seen) < 200:
                for msg in await sub.fetch(100, timeout=5):
                    seen.add(msg.data)
                    await msg.ack()
            assert seen == {f"job-{i}".encode() for i in range(200)}
            # The meta group keeps its quorum with two of three regions: new streams can still be made.
            created = await retry(
                lambda: js.add_stream(
                    StreamConfig(name="AFTER_LOSS", subjects=["after.loss"], placement={"cluster": "eu"})
                )
            )
            assert created.config.name == "AFTER_LOSS"
        finally:
            await nc.close()
    finally:
        supercluster.recover("ap")


async def test_an_r3_stream_in_the_geo_cluster_has_one_replica_in_each_region(
    supercluster: Supercluster,
) -> None:
    nc, js = await jetstream(supercluster.url("us"))
    try:
        info = await retry(
            lambda: js.add_stream(
                StreamConfig(
                    name="GEO_SPREAD", subjects=["geo.spread"], num_replicas=3, placement={"cluster": "geo"}
                )
            )
        )
        assert info.cluster is not None
        assert info.cluster.name == GEO_CLUSTER
        peers = {info.cluster.leader, *(replica.name for replica in info.cluster.replicas or [])}
        assert peers == {f"nats-geo-{region}" for region in supercluster.regions}
    finally:
        await nc.close()


async def test_an_r3_geo_stream_keeps_accepting_and_keeps_every_acknowledged_job_when_a_region_dies(
    supercluster: Supercluster,
) -> None:
    """What `durability: geo` promises: the region holding the stream's leader dies, nothing is lost."""
    nc, js = await jetstream(supercluster.url("eu"))
    try:
        info = await retry(
            lambda: js.add_stream(
                StreamConfig(
                    name="GEO_JOBS", subjects=["geo.jobs"], num_replicas=3, placement={"cluster": "geo"}
                )
            )
        )
        acked: dict[int, bytes] = {}
        for i in range(200):
            ack = await publish_job(js, i)
            acked[ack.seq] = f"job-{i}".encode()
    finally:
        await nc.close()
    assert info.cluster is not None
    leader_region = str(info.cluster.leader).removeprefix(f"nats-{GEO_CLUSTER}-")
    survivor = next(region for region in supercluster.regions if region != leader_region)

    supercluster.lose(leader_region)
    try:
        nc, js = await jetstream(supercluster.url(survivor))
        try:
            lost_at = time.monotonic()
            first = await publish_job(js, 200)
            print(f"\ngeo stream accepted again {time.monotonic() - lost_at:.2f} s after losing its leader")
            acked[first.seq] = b"job-200"
            for i in range(201, 300):
                ack = await publish_job(js, i)
                acked[ack.seq] = f"job-{i}".encode()
            after = await retry(lambda: js.stream_info("GEO_JOBS"))
            assert after.cluster is not None
            assert after.cluster.leader != info.cluster.leader
            assert after.state.messages == 300
            for seq, data in acked.items():
                assert (await retry(lambda s=seq: js.get_msg("GEO_JOBS", s))).data == data
        finally:
            await nc.close()
    finally:
        supercluster.recover(leader_region)


async def publish_job(js: JetStreamContext, i: int) -> PubAck:
    """Publish job `i` as a gateway does: retried with the same message id until JetStream
    acknowledges it (the new leader may step in and out for a while after a region's loss, and a
    retry of a publish that did land is answered as a duplicate with the original sequence)."""
    return await retry(
        lambda: js.publish("geo.jobs", f"job-{i}".encode(), headers={"Nats-Msg-Id": f"job-{i}"}), within=60.0
    )


async def publish_latencies(js: JetStreamContext, subject: str, count: int) -> list[float]:
    """Seconds from publish to PubAck, one job at a time (what a gateway waits before its 202)."""
    latencies = []
    for i in range(count):
        started = time.perf_counter()
        ack = await js.publish(subject, b"x" * 512, headers={"Nats-Msg-Id": f"{subject}-{i}"})
        latencies.append(time.perf_counter() - started)
        assert ack.seq == i + 1
        assert not ack.duplicate
    return latencies


def summary(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * len(ordered)))]
    return f"median {statistics.median(ordered) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms"


async def test_the_accept_latency_of_an_r3_geo_stream_against_an_r1_regional_stream(
    supercluster: Supercluster,
) -> None:
    """What geo costs per accept: the PubAck waits for a quorum in another region."""
    count = 300
    nc, js = await jetstream(supercluster.url("us"))
    try:
        await retry(
            lambda: js.add_stream(
                StreamConfig(name="LAT_REGIONAL", subjects=["lat.regional"], placement={"cluster": "us"})
            )
        )
        await retry(
            lambda: js.add_stream(
                StreamConfig(
                    name="LAT_GEO", subjects=["lat.geo"], num_replicas=3, placement={"cluster": "geo"}
                )
            )
        )
        regional = await publish_latencies(js, "lat.regional", count)
        geo = await publish_latencies(js, "lat.geo", count)
        assert (await js.stream_info("LAT_REGIONAL")).state.messages == count
        assert (await js.stream_info("LAT_GEO")).state.messages == count
    finally:
        await nc.close()
    print(
        f"\naccept latency over {count} sequential publishes from region us:"
        f"\n  R1 regional stream: {summary(regional)}\n  R3 geo stream:      {summary(geo)}"
    )
