"""Drains: take a failed region's jobs from its mirror here, alongside this region's own jobs.

When a region fails, the operator names a drain in the pipeline's routing entry: the stream and
consumer the backup region's workers should take the failed region's jobs from (a drain consumer
on the mirror of its job stream, under `durability: regional`; the region's own stream and
consumer, which outlive it on the cross-region cluster, under `geo`). The backup's workers read
their region's copy of the routing table every `interval` seconds and run one more `JobConsumer`
per drain while it is listed. So a failover needs no new Deployment and no
rollout: the workers already running pick the drain up within one interval, and the autoscaler
adds replicas from the drain's backlog.

A drained job carries its origin region: its source is read from this region's replica of the
origin's sources, and its completion record is checked in the replicas too, so jobs the origin
finished before it failed are acknowledged without work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from pixelmesh.api import streams
from pixelmesh.api.messages import PipelineRef
from pixelmesh.api.routing import RoutingEntry
from pixelmesh.directget import last_message
from pixelmesh.worker.config import WorkerConfig
from pixelmesh.worker.consumer import JobConsumer
from pixelmesh.worker.outcome import describe

logger = logging.getLogger(__name__)

DRAIN_CHECK_SECONDS = 5.0


async def find_drains(js: JetStreamContext, ref: PipelineRef, region: str) -> dict[str, tuple[str, str]]:
    """Origin region -> (stream, consumer) of every drain the routing table gives this region."""
    bucket = streams.routing_bucket(region)
    try:
        entry = await last_message(
            js, streams.kv_stream(bucket), streams.kv_subject(bucket, streams.routing_key(ref))
        )
    except NotFoundError:
        return {}
    if (entry.headers or {}).get("KV-Operation") in ("DEL", "PURGE"):
        return {}
    table = RoutingEntry.model_validate_json(entry.data or b"{}")
    return {d.origin: (d.stream, d.consumer) for d in table.drains if d.backup == region}


class DrainWatcher:
    """Starts and stops one `JobConsumer` per drain the operator opened for this region."""

    def __init__(
        self,
        config: WorkerConfig,
        ref: PipelineRef,
        js: JetStreamContext,
        make_consumer: Callable[[WorkerConfig], JobConsumer],
        *,
        interval: float = DRAIN_CHECK_SECONDS,
    ) -> None:
        self._config = config
        self._ref = ref
        self._js = js
        self._make_consumer = make_consumer
        self._interval = interval
        self._running: dict[str, tuple[JobConsumer, asyncio.Task[None]]] = {}

    @property
    def draining(self) -> tuple[str, ...]:
        """The origin regions being drained now."""
        return tuple(sorted(self._running))

    async def run(self, stopping: asyncio.Event) -> None:
        """Check for drains every interval until `stopping` is set."""
        while not stopping.is_set():
            try:
                await self.check()
            except Exception as exc:  # JetStream unavailable: the next check will tell
                logger.warning("Looking for drains of pipeline %s failed: %s", self._ref, describe(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self._interval)

    async def check(self) -> None:
        drains = await find_drains(self._js, self._ref, self._config.region)
        for origin, (stream, durable) in drains.items():
            if origin not in self._running:
                # Its own name: its service-rate reports must not overwrite the main consumer's.
                settings = replace(
                    self._config,
                    job_stream=stream,
                    job_consumer=durable,
                    worker_name=f"{self._config.worker_name}-drain-{origin}",
                )
                consumer = self._make_consumer(settings)
                task = asyncio.create_task(consumer.run(), name=f"drain-{origin}")
                self._running[origin] = (consumer, task)
                logger.info(
                    "Draining the jobs of failed region %s for pipeline %s from %s.",
                    origin,
                    self._ref,
                    stream,
                )
        for origin in [o for o in self._running if o not in drains]:
            await self._stop(origin, grace=self._config.drain_grace_seconds)
            logger.info("The drain of region %s for pipeline %s ended.", origin, self._ref)

    async def stop(self, grace: float) -> None:
        for origin in list(self._running):
            await self._stop(origin, grace=grace)

    async def _stop(self, origin: str, *, grace: float) -> None:
        consumer, task = self._running.pop(origin)
        consumer.stop()
        with contextlib.suppress(Exception):
            await task
        await consumer.finish(grace=grace)
