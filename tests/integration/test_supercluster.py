"""Three regions on loopback: streams placed by region, mirrored across, surviving a region's loss."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import nats
import pytest
from nats.js.api import StreamConfig, StreamSource
from nats.js.client import JetStreamContext

from e2e.regions import Supercluster

pytestmark = pytest.mark.slow
T = TypeVar("T")


@pytest.fixture(scope="module")
def supercluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supercluster]:
    with Supercluster(["eu", "us", "ap"], tmp_path_factory.mktemp("regions")) as sc:
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
