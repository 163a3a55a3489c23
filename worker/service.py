"""One worker process's lifecycle: connect, serve probes, consume, and drain on a stop signal.

`serve()` is what `pixelmesh-worker` runs; tests and the local stack can run a `WorkerService`
in-process and call its `stop()`. The order matters for a clean drain:

1. The health server starts first, so `/healthz` answers while NATS is still unreachable (the pod
   is alive, just not ready).
2. The NATS connection retries forever and reconnects by itself; the consumer binds once the
   operator has provisioned the pipeline.
3. On stop (SIGTERM): no more fetches; jobs waiting for a libvips thread are released (nak'ed) at
   once; running jobs get the rest of the grace period; then the connection drains, which flushes
   the final acks. Exit code 0 when this completes in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from nats.aio.client import Client as NatsClient

from pixelmesh.api.messages import PipelineRevision
from pixelmesh.worker import metrics
from pixelmesh.worker.config import WorkerConfig
from pixelmesh.worker.consumer import JobConsumer, RunPipeline
from pixelmesh.worker.drains import DrainWatcher
from pixelmesh.worker.health import HealthServer, Readiness
from pixelmesh.worker.libvips import configure_libvips
from pixelmesh.worker.outcome import describe
from pixelmesh.worker.pipeline import run_pipeline

logger = logging.getLogger(__name__)

CONNECTION_DRAIN_SECONDS = 5.0
"""Reserved from the grace period for flushing acks and closing the connection."""


def _server(nc: NatsClient) -> str:
    url = nc.connected_url
    return url.netloc if url is not None else "(none)"


async def _connect(config: WorkerConfig, stopping: asyncio.Event) -> NatsClient:
    nc = NatsClient()

    async def disconnected() -> None:
        metrics.NATS_CONNECTED.set(0)
        if not stopping.is_set():
            logger.warning("Worker %s lost its NATS connection; reconnecting.", config.worker_name)

    async def reconnected() -> None:
        metrics.NATS_CONNECTED.set(1)
        metrics.NATS_RECONNECTS.inc()
        logger.info("Worker %s reconnected to NATS at %s.", config.worker_name, _server(nc))

    async def error(exc: Exception) -> None:
        logger.debug("NATS client error: %s.", describe(exc))

    await nc.connect(
        servers=list(config.nats_urls),
        name=config.worker_name,
        user_credentials=str(config.nats_credentials) if config.nats_credentials else None,
        allow_reconnect=True,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        connect_timeout=2,
        ping_interval=10,
        max_outstanding_pings=3,
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
        error_cb=error,
    )
    metrics.NATS_CONNECTED.set(1)
    logger.info("Worker %s connected to NATS at %s.", config.worker_name, _server(nc))
    return nc


class WorkerService:
    """A worker's resources and state; `run()` returns the exit code once stopped and drained."""

    def __init__(
        self,
        config: WorkerConfig,
        revision: PipelineRevision,
        *,
        run: RunPipeline = run_pipeline,
    ) -> None:
        self.config = config
        self.revision = revision
        self.stopping = asyncio.Event()
        self.started = asyncio.Event()
        """Set once the health server listens (`health_port` is then known)."""
        self.nc: NatsClient | None = None
        self.consumer: JobConsumer | None = None
        self.drains: DrainWatcher | None = None
        self._run_pipeline = run
        self._health = HealthServer(
            host=config.metrics_host,
            port=config.metrics_port,
            registry=metrics.REGISTRY,
            readiness=self.readiness,
        )

    @property
    def health_port(self) -> int:
        return self._health.port

    def readiness(self) -> Readiness:
        return Readiness(
            nats_connected=self.nc is not None and self.nc.is_connected,
            consumer_bound=self.consumer is not None and self.consumer.bound,
            draining=self.stopping.is_set(),
        )

    def stop(self) -> None:
        """Begin a graceful drain (what SIGTERM does)."""
        self.stopping.set()

    async def run(self) -> int:
        config, revision = self.config, self.revision
        pipeline_metrics = metrics.WorkerMetrics(str(revision.ref), config.region)
        configure_libvips(concurrency=config.effective_vips_concurrency)
        metrics.THREADS.set(config.effective_threads)
        metrics.BUILD.info({"pipeline": str(revision.ref), "generation": str(revision.generation)})
        metrics.watch_libvips_memory()
        await self._health.start()
        self.started.set()
        executor = ThreadPoolExecutor(max_workers=config.effective_threads, thread_name_prefix="libvips")
        stopped_at = time.monotonic()
        finished = True
        try:
            self.nc = nc = await _until_stopped(_connect(config, self.stopping), self.stopping)
            if nc is None:
                return 0

            def make_consumer(settings: WorkerConfig) -> JobConsumer:
                return JobConsumer(
                    config=settings,
                    revision=revision,
                    nc=nc,
                    executor=executor,
                    metrics=pipeline_metrics,
                    run=self._run_pipeline,
                )

            self.consumer = consumer = make_consumer(config)
            self.drains = drains = DrainWatcher(
                config, revision.ref, nc.jetstream(), make_consumer, interval=config.drain_check_seconds
            )
            consuming = asyncio.create_task(consumer.run(), name="consumer")
            watching = asyncio.create_task(drains.run(self.stopping), name="drains")
            waiting = asyncio.create_task(self.stopping.wait())
            await asyncio.wait({consuming, waiting}, return_when=asyncio.FIRST_COMPLETED)
            stopped_at = time.monotonic()
            waiting.cancel()
            consumer.stop()
            await consuming  # returns as soon as the fetch loop sees the stop
            budget = max(config.drain_grace_seconds - CONNECTION_DRAIN_SECONDS, 1.0)
            await watching
            await drains.stop(grace=budget)
            finished = await consumer.finish(grace=budget)
            remaining = max(config.drain_grace_seconds - (time.monotonic() - stopped_at), 1.0)
            try:
                await asyncio.wait_for(nc.drain(), timeout=remaining)
            except Exception as exc:
                logger.warning(
                    "Draining the NATS connection did not complete (%s); closing it.", describe(exc)
                )
                with contextlib.suppress(Exception):
                    await nc.close()
            metrics.NATS_CONNECTED.set(0)
        finally:
            await self._health.stop()
            executor.shutdown(wait=finished, cancel_futures=True)
        logger.info(
            "Worker %s stopped after draining for %.2fs%s.",
            config.worker_name,
            time.monotonic() - stopped_at,
            "" if finished else " (some jobs were released unfinished)",
        )
        return 0


async def serve(
    config: WorkerConfig,
    revision: PipelineRevision,
    *,
    run: RunPipeline = run_pipeline,
    install_signal_handlers: bool = True,
) -> int:
    """Run a worker until SIGTERM or SIGINT; the exit code."""
    service = WorkerService(config, revision, run=run)
    if install_signal_handlers:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, service.stop)
    return await service.run()


async def _until_stopped(
    connecting: Coroutine[Any, Any, NatsClient], stop: asyncio.Event
) -> NatsClient | None:
    """Await the connection unless `stop` is set first."""
    task = asyncio.ensure_future(connecting)
    waiting = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    return None
