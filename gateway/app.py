"""The gateway application: `create_app(config)` builds it, `serve(config)` runs it on a port.

One middleware turns every failure into problem+json (our `ProblemError`s, aiohttp's own HTTP
errors such as an unknown route, and anything unexpected, which is logged with its traceback and
answered 500 without details) and counts requests by route template.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from pixelmesh.api.http import ProblemCode
from pixelmesh.gateway.auth import ApiKeys
from pixelmesh.gateway.catalog import DirectoryCatalog, PipelineCatalog
from pixelmesh.gateway.config import GatewayConfig
from pixelmesh.gateway.handlers import API_KEYS, CONFIG, METRICS, SERVICE, add_routes
from pixelmesh.gateway.metrics import GatewayMetrics
from pixelmesh.gateway.problems import ProblemError, code_for_http_status, problem_response
from pixelmesh.gateway.regions import RegionLink, Regions
from pixelmesh.gateway.service import JobService

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PASSED_ON_HEADERS = ("Allow",)


def route_template(request: web.Request) -> str:
    route = request.match_info.route
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def problems_and_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics = request.app[METRICS]
    started = time.monotonic()
    problem: ProblemError | None = None
    try:
        response = await handler(request)
    except ProblemError as error:
        problem = error
    except web.HTTPException as error:
        if error.status < 400:
            raise
        headers = {name: error.headers[name] for name in PASSED_ON_HEADERS if name in error.headers}
        problem = ProblemError(code_for_http_status(error.status), error.reason, headers=headers)
    except Exception:
        logger.exception("Request %s %s failed unexpectedly.", request.method, request.path)
        problem = ProblemError(ProblemCode.INTERNAL, "the gateway failed to answer; the error is logged")
    if problem is not None:
        response = problem_response(problem, instance=request.path)
        metrics.problems.labels(problem.code.value).inc()
    route = route_template(request)
    metrics.requests.labels(route, request.method, str(response.status)).inc()
    metrics.request_seconds.labels(route).observe(time.monotonic() - started)
    return response


def create_app(
    config: GatewayConfig,
    *,
    catalog: PipelineCatalog | None = None,
    metrics: GatewayMetrics | None = None,
) -> web.Application:
    """The gateway as an aiohttp application; it connects to its regions when it starts."""
    metrics = metrics or GatewayMetrics()
    catalog = catalog or DirectoryCatalog(config.pipelines, refresh_seconds=config.catalog_refresh_seconds)
    regions = Regions.from_config(config.regions, config.home)
    service = JobService(config, catalog, regions, metrics)
    api_keys = ApiKeys(config.api_keys)

    app = web.Application(middlewares=[problems_and_metrics])
    app[CONFIG] = config
    app[SERVICE] = service
    app[API_KEYS] = api_keys
    app[METRICS] = metrics
    add_routes(app)

    async def start(_app: web.Application) -> None:
        if not api_keys.enabled:
            logger.warning(
                "No API keys are configured: the job endpoints are open to anyone who can reach them."
            )
        regions.start()
        for name, link in regions.links.items():
            metrics.region_connected.labels(name).set_function(_connected_gauge(link))

    async def stop(_app: web.Application) -> None:
        await service.close()
        await regions.close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app


def _connected_gauge(link: RegionLink) -> Callable[[], float]:
    return lambda: 1.0 if link.connected else 0.0


@dataclass(frozen=True, slots=True)
class RunningGateway:
    url: str
    """Base URL, e.g. `http://127.0.0.1:8080`."""
    app: web.Application
    port: int


@contextlib.asynccontextmanager
async def serve(
    config: GatewayConfig,
    *,
    catalog: PipelineCatalog | None = None,
    ready_timeout: float = 10.0,
) -> AsyncIterator[RunningGateway]:
    """Run the gateway on `config.host:config.port` (0: a free port) until the block exits.

    Waits up to `ready_timeout` seconds for the home region's connection before yielding.
    """
    app = create_app(config, catalog=catalog)
    runner = web.AppRunner(app, access_log=None, lingering_time=config.lingering_seconds)
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.host, config.port)
        await site.start()
        port = _bound_port(runner)
        home = app[SERVICE].regions.links[config.home]
        if not await home.wait_connected(ready_timeout):
            logger.warning("The home region %s is not reachable yet; serving anyway.", config.home)
        url = f"http://{config.host}:{port}"
        logger.info("The gateway listens on %s.", url)
        yield RunningGateway(url=url, app=app, port=port)
    finally:
        await runner.cleanup()


def _bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    raise RuntimeError("the gateway is not bound to a TCP port")
