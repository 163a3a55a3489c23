"""Values read from JetStream in the background and served from memory on the request path.

At tens of thousands of requests per second a JetStream API call per request (consumer info for the
backlog, a KV get for the routing table) would load the servers more than the jobs do. A
`BackgroundValue` keeps the last value it loaded; a read returns it at once and, when it is older
than `max_age`, starts one background refresh (never two at a time). The first read of a key
returns the `initial` value: the gateway starts serving before it has looked. A value that must
not be guessed (where a pipeline's jobs go) is read with `loaded`, which waits for the key's
first load, up to a bound.

Caveat: a value can be up to `max_age` plus one load old. That is the point.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass
class _Slot(Generic[V]):
    value: V
    loaded_at: float = float("-inf")
    loading: asyncio.Task[None] | None = None


@dataclass
class BackgroundValues(Generic[K, V]):
    """Values per key, refreshed in the background when stale."""

    load: Callable[[K], Awaitable[V]]
    initial: Callable[[K], V]
    max_age: float
    description: str
    _slots: dict[K, _Slot[V]] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def get(self, key: K) -> V:
        """The last loaded value (or the initial one); starts a refresh if it is stale."""
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot(self.initial(key))
        if slot.loading is None and time.monotonic() - slot.loaded_at >= self.max_age:
            slot.loading = asyncio.get_running_loop().create_task(self._refresh(key, slot))
            self._tasks.add(slot.loading)
            slot.loading.add_done_callback(self._tasks.discard)
        return slot.value

    async def loaded(self, key: K, within: float) -> V:
        """Like `get`, but the first read of a key waits up to `within` seconds for its first load
        (the initial value after that); readers that come meanwhile wait on the same load."""
        value = self.get(key)
        slot = self._slots[key]
        if slot.loaded_at == float("-inf") and slot.loading is not None:
            # Shielded: a reader that gives up does not cancel the load the others wait on.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(slot.loading), within)
            return slot.value
        return value

    async def _refresh(self, key: K, slot: _Slot[V]) -> None:
        try:
            slot.value = await self.load(key)
        except Exception as error:
            logger.warning(
                "Refreshing %s for %s failed, keeping the last value: %s", self.description, key, error
            )
        finally:
            # Also after a failure: retry after max_age, not on every request.
            slot.loaded_at = time.monotonic()
            slot.loading = None

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
