"""`BackgroundValues`: reads served from memory, and a first read that waits for the first load."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from pixelmesh.gateway.cache import BackgroundValues


@dataclass
class SlowLoads:
    """Loads that finish once `release` is set; `loads` lists the keys loaded."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    loads: list[str] = field(default_factory=list)

    async def load(self, key: str) -> str:
        self.loads.append(key)
        await self.release.wait()
        return f"loaded {key}"


@pytest.fixture
def loads() -> SlowLoads:
    return SlowLoads()


@pytest.fixture
async def cache(loads: SlowLoads) -> AsyncIterator[BackgroundValues[str, str]]:
    values: BackgroundValues[str, str] = BackgroundValues(
        load=loads.load, initial=lambda key: "initial", max_age=60.0, description="test"
    )
    yield values
    await values.close()


async def test_a_first_read_returns_the_initial_value_and_loads_in_the_background(
    loads: SlowLoads, cache: BackgroundValues[str, str]
) -> None:
    assert cache.get("a") == "initial"
    loads.release.set()
    await asyncio.sleep(0.01)

    assert cache.get("a") == "loaded a"
    assert loads.loads == ["a"]


async def test_first_readers_that_wait_share_one_load(
    loads: SlowLoads, cache: BackgroundValues[str, str]
) -> None:
    readers = [asyncio.create_task(cache.loaded("a", within=5.0)) for _ in range(3)]
    await asyncio.sleep(0.01)
    loads.release.set()

    assert await asyncio.gather(*readers) == ["loaded a"] * 3
    assert loads.loads == ["a"]


async def test_a_reader_that_gives_up_gets_the_initial_value_and_the_load_goes_on(
    loads: SlowLoads, cache: BackgroundValues[str, str]
) -> None:
    assert await cache.loaded("a", within=0.01) == "initial"
    loads.release.set()
    await asyncio.sleep(0.01)

    assert await cache.loaded("a", within=0.01) == "loaded a"
    assert loads.loads == ["a"]
