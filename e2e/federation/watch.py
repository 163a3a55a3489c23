"""Watching the federation from outside: the routing table and a mirror's lag, sampled over time.

Failover and failback are measured where clients see them: in the routing table the gateways read
(the operator's own bucket in the hub region, which outlives any member's loss), sampled every
`interval` seconds and kept only when it changes. A mirror's lag is sampled the same way from the
stream's info in the backup region. Both run as tasks beside the scenario's load, in its event loop.

The helpers that turn samples into figures (`first_sample`, `weight_steps`) are pure.
Caveat: a change shorter than the sampling interval can be missed; the operator writes at most once
per reconcile pass (about a second here), so 0.1 s sampling sees every generation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace

import nats
from nats.aio.client import Client as NatsClient
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from pixelmesh.api import streams
from pixelmesh.api.messages import PipelineRef
from pixelmesh.api.routing import RoutingEntry

log = logging.getLogger(__name__)

READ_ERRORS = (NatsError, APIError, OSError, TimeoutError)


@dataclass(frozen=True, slots=True)
class RoutingSample:
    """One version of a pipeline's routing entry, and when it was first seen."""

    at: float
    """`time.monotonic()` of the read that first saw it."""
    generation: int
    weights: dict[str, int]
    drains: tuple[str, ...]
    """Origin regions being drained."""


def sample_of(at: float, entry: RoutingEntry) -> RoutingSample:
    return RoutingSample(
        at=at,
        generation=entry.generation,
        weights={w.region: w.weight for w in entry.regions},
        drains=tuple(sorted(d.origin for d in entry.drains)),
    )


def first_sample(
    samples: Sequence[RoutingSample], since: float, holds: Callable[[RoutingSample], bool]
) -> RoutingSample | None:
    """The first sample seen at or after `since` for which `holds` is true."""
    return next((s for s in samples if s.at >= since and holds(s)), None)


def weight_steps(samples: Sequence[RoutingSample], region: str, since: float) -> list[tuple[float, int]]:
    """(seconds after `since`, weight) each time `region`'s weight changed, from the last value
    before `since` on."""
    steps: list[tuple[float, int]] = []
    last: int | None = None
    for sample in samples:
        weight = sample.weights.get(region, 0)
        if sample.at < since:
            last = weight
            continue
        if weight != last:
            steps.append((round(sample.at - since, 2), weight))
            last = weight
    return steps


@dataclass
class RoutingWatch:
    """Samples one pipeline's routing entry in `region`'s routing bucket until stopped."""

    nats_url: str
    ref: PipelineRef
    region: str
    interval: float = 0.1
    samples: list[RoutingSample] = field(default_factory=list)

    @property
    def latest(self) -> RoutingSample | None:
        return self.samples[-1] if self.samples else None

    async def run(self, stop: asyncio.Event) -> None:
        await _sample_every(self.nats_url, self.interval, stop, self._sample)

    async def _sample(self, js: JetStreamContext) -> None:
        bucket = streams.routing_bucket(self.region)
        stream, subject = streams.kv_stream(bucket), streams.kv_subject(bucket, streams.routing_key(self.ref))
        try:
            message = await js.get_last_msg(stream, subject)
        except NotFoundError:
            return
        except READ_ERRORS as error:
            log.info("The routing entry of %s in %s is not readable now: %r", self.ref, bucket, error)
            return
        sample = sample_of(time.monotonic(), RoutingEntry.model_validate_json(message.data or b"{}"))
        latest = self.latest
        if latest is None or replace(sample, at=latest.at) != latest:
            self.samples.append(sample)


@dataclass
class MirrorLagWatch:
    """Samples the lag of a mirror stream (as its own region reports it) until stopped."""

    nats_url: str
    stream: str
    interval: float = 0.25
    samples: list[tuple[float, int]] = field(default_factory=list)
    """(`time.monotonic()`, messages the mirror had not copied yet)."""

    def last_before(self, moment: float) -> int | None:
        before = [lag for at, lag in self.samples if at < moment]
        return before[-1] if before else None

    async def run(self, stop: asyncio.Event) -> None:
        await _sample_every(self.nats_url, self.interval, stop, self._sample)

    async def _sample(self, js: JetStreamContext) -> None:
        try:
            info = await js.stream_info(self.stream)
        except READ_ERRORS as error:
            log.info("The mirror %s is not readable now: %r", self.stream, error)
            return
        if info.mirror is not None:
            self.samples.append((time.monotonic(), int(info.mirror.lag or 0)))


@dataclass(frozen=True, slots=True)
class ConsumerSample:
    at: float
    delivered: int
    """Deliveries the consumer has made so far (its consumer sequence)."""
    pending: int
    """Not yet delivered plus delivered and not acknowledged."""


@dataclass
class ConsumerWatch:
    """Samples a durable consumer's progress (e.g. a drain) until stopped; absent: no sample."""

    nats_url: str
    stream: str
    consumer: str
    interval: float = 0.25
    samples: list[ConsumerSample] = field(default_factory=list)

    def drained_at(self) -> float | None:
        """When the consumer was first seen with nothing left to deliver or acknowledge; else None."""
        return next((s.at for s in self.samples if s.pending == 0), None)

    def started_at(self) -> float | None:
        return next((s.at for s in self.samples if s.delivered > 0), None)

    async def run(self, stop: asyncio.Event) -> None:
        await _sample_every(self.nats_url, self.interval, stop, self._sample)

    async def _sample(self, js: JetStreamContext) -> None:
        try:
            info = await js.consumer_info(self.stream, self.consumer)
        except NotFoundError:
            return
        except READ_ERRORS as error:
            log.info("The consumer %s of %s is not readable now: %r", self.consumer, self.stream, error)
            return
        self.samples.append(
            ConsumerSample(
                time.monotonic(),
                int(info.delivered.consumer_seq or 0) if info.delivered is not None else 0,
                int(info.num_pending or 0) + int(info.num_ack_pending or 0),
            )
        )


async def _sample_every(
    url: str, interval: float, stop: asyncio.Event, sample: Callable[[JetStreamContext], Awaitable[None]]
) -> None:
    """Call `sample` every `interval` seconds until `stop` is set, over one connection to `url`."""
    client = await _connect(url)
    js = client.jetstream(timeout=2)
    try:
        while not stop.is_set():
            await sample(js)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
    finally:
        await _close(client)


async def _connect(url: str) -> NatsClient:
    return await nats.connect(
        servers=[url], connect_timeout=2, max_reconnect_attempts=-1, reconnect_time_wait=0.2, error_cb=_quiet
    )


async def _close(client: NatsClient) -> None:
    with contextlib.suppress(NatsError, OSError):
        await client.close()


async def _quiet(_error: Exception) -> None:
    """Connection errors are expected while a region is down; the client reconnects."""
