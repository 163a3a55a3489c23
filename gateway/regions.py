"""One NATS connection per region, and handles to the region's buckets.

The gateway must keep serving the regions it can reach when another is down, so each region
connects in the background and keeps reconnecting; a request routed to a region that is not
connected gets 503 (and routing prefers connected regions in the first place). KV handles are
looked up once and kept: `js.key_value()` costs a JetStream API call. Objects are read by
`pixelmesh.objectstore`, which needs no handle.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import nats
from nats.aio.client import Client as NatsClient
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from pixelmesh.api.http import ProblemCode
from pixelmesh.gateway.problems import ProblemError

logger = logging.getLogger(__name__)

JS_TIMEOUT = 5.0
ERROR_LOG_INTERVAL = 30.0


@dataclass
class RegionLink:
    """The gateway's connection to one region's NATS cluster."""

    name: str
    servers: tuple[str, ...]
    nc: NatsClient | None = None
    _kv: dict[str, KeyValue] = field(default_factory=dict)
    _connecting: asyncio.Task[None] | None = None
    _closing: bool = False
    _last_error_logged: float = float("-inf")

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    @property
    def js(self) -> JetStreamContext:
        if self.nc is None or not self.nc.is_connected:
            raise ProblemError(ProblemCode.UNAVAILABLE, f"region {self.name} is not reachable right now")
        return self.nc.jetstream(timeout=JS_TIMEOUT)

    def start(self) -> None:
        """Connect in the background, retrying until it works or `close()` is called."""
        if self._connecting is None:
            self._connecting = asyncio.get_running_loop().create_task(self._connect_forever())

    async def wait_connected(self, seconds: float) -> bool:
        """Whether the first connection succeeds within `seconds`."""
        if self._connecting is None:
            self.start()
        assert self._connecting is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._connecting), seconds)
        except TimeoutError:
            return False
        return self.connected

    async def _connect_forever(self) -> None:
        delay = 0.1
        while True:
            try:
                self.nc = await nats.connect(
                    servers=list(self.servers),
                    name=f"pixelmesh-gateway-{self.name}",
                    connect_timeout=2,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                    error_cb=self._on_error,
                )
            except (NatsError, OSError, TimeoutError) as error:
                logger.warning(
                    "Region %s is not reachable yet (%s); retrying in %.1fs.", self.name, error, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            server = self.nc.connected_url
            logger.info("Connected to region %s at %s.", self.name, server.netloc if server else "?")
            return

    async def _on_disconnected(self) -> None:
        if self._closing:
            return
        logger.warning("Lost the connection to region %s; reconnecting.", self.name)

    async def _on_reconnected(self) -> None:
        logger.info("Reconnected to region %s.", self.name)

    async def _on_error(self, error: Exception) -> None:
        # While a region is down the client reports every attempt; say so once per interval.
        now = time.monotonic()
        if now - self._last_error_logged >= ERROR_LOG_INTERVAL:
            self._last_error_logged = now
            logger.warning("The connection to region %s reported: %s", self.name, error)
        else:
            logger.debug("The connection to region %s reported: %s", self.name, error)

    async def kv(self, bucket: str) -> KeyValue:
        handle = self._kv.get(bucket)
        if handle is None:
            handle = self._kv[bucket] = await self.js.key_value(bucket)
        return handle

    async def close(self) -> None:
        self._closing = True
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
            await asyncio.gather(self._connecting, return_exceptions=True)
        if self.nc is not None and not self.nc.is_closed:
            await self.nc.drain()


@dataclass
class Regions:
    """Every region the gateway can publish to, its home first."""

    home: str
    links: dict[str, RegionLink]

    @classmethod
    def from_config(cls, servers: Mapping[str, Sequence[str]], home: str) -> Regions:
        return cls(home=home, links={name: RegionLink(name, tuple(urls)) for name, urls in servers.items()})

    def start(self) -> None:
        for link in self.links.values():
            link.start()

    def get(self, name: str) -> RegionLink:
        link = self.links.get(name)
        if link is None:
            raise ProblemError(ProblemCode.NO_REGION, f"the gateway has no connection to region {name}")
        return link

    def home_first(self) -> list[RegionLink]:
        """Connected regions, the home region first (lookups try it before the others)."""
        ordered = sorted(self.links.values(), key=lambda link: link.name != self.home)
        return [link for link in ordered if link.connected]

    def connected_names(self) -> frozenset[str]:
        return frozenset(name for name, link in self.links.items() if link.connected)

    async def close(self) -> None:
        await asyncio.gather(*(link.close() for link in self.links.values()), return_exceptions=True)
