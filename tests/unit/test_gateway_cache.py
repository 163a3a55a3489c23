"""`BackgroundValues`: reads served from memory, and a first read that waits for the first load."""

from __future__ import annotations

import asyncio

from pixelmesh.gateway.cache import BackgroundValues


def values(loads: list[str], release: asyncio.Event) -> BackgroundValues[str, str]:
    async def load(key: str) -> str:
        loads.append(key)
        await release.wait()
        return f"loaded {key}"

    return BackgroundValues(load=load, initial=lambda key: "initial", max_age=60.0, description="test")


async def test_a_first_read_returns_the_initial_value_and_loads_in_the_background() -> None:
    loads: list[str] = []
    release = asyncio.Event()
    cache = values(loads, release)

    assert cache.get("a") == "initial"
    release.set()
    await asyncio.sleep(0.01)

    assert cache.get("a") == "loaded a"
    assert loads == ["a"]
    await cache.close()


async def test_first_readers_that_wait_share_one_load() -> None:
    loads: list[str] = []
    release = asyncio.Event()
    cache = values(loads, release)

    readers = [asyncio.create_task(cache.loaded("a", within=5.0)) for _ in range(3)]
    await asyncio.sleep(0.01)
    release.set()

    assert await asyncio.gather(*readers) == ["loaded a"] * 3
    assert loads == ["a"]
    await cache.close()


async def test_a_reader_that_gives_up_gets_the_initial_value_and_the_load_goes_on() -> None:
    loads: list[str] = []
    release = asyncio.Event()
    cache = values(loads, release)

    assert await cache.loaded("a", within=0.01) == "initial"
    release.set()
    await asyncio.sleep(0.01)

    assert await cache.loaded("a", within=0.01) == "loaded a"
    assert loads == ["a"]
    await cache.close()
