"""The worker's one HTTP server: `/metrics` for Prometheus, `/healthz` and `/readyz` for Kubernetes.

`/healthz` answers 200 while the event loop runs (a wedged loop cannot answer, and the kubelet
restarts the pod). `/readyz` answers 200 only while the worker is connected to NATS, bound to its
consumer and not draining; its body says which of these holds, for a person reading it.

It runs on the worker's event loop: scrapes are rare and cheap, and serving them from the loop
also proves the loop is responsive.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Readiness:
    """The conditions `/readyz` reports."""

    nats_connected: bool
    consumer_bound: bool
    draining: bool

    @property
    def ready(self) -> bool:
        return self.nats_connected and self.consumer_bound and not self.draining


class HealthServer:
    """Serves metrics and probes on `host:port` (port 0: any free port, see `.port`)."""

    def __init__(
        self, *, host: str, port: int, registry: CollectorRegistry, readiness: Callable[[], Readiness]
    ) -> None:
        self._host = host
        self._requested_port = port
        self._registry = registry
        self._readiness = readiness
        self._runner: web.AppRunner | None = None
        self.port = port

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self._app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._requested_port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or ()
        if sockets:
            self.port = sockets[0].getsockname()[1]
        logger.info("Serving /metrics, /healthz and /readyz on %s:%d.", self._host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, _: web.Request) -> web.Response:
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _: web.Request) -> web.Response:
        state = self._readiness()
        body = {
            "ready": state.ready,
            "natsConnected": state.nats_connected,
            "consumerBound": state.consumer_bound,
            "draining": state.draining,
        }
        return web.Response(
            text=json.dumps(body) + "\n", status=200 if state.ready else 503, content_type="application/json"
        )
