"""Run the operator: `python -m pixelmesh.operator` or `main(argv)` (the `pixelmesh operator` command).

kopf runs in this process and this event loop, standalone (no peering: one operator per cluster,
run as a single-replica Deployment), watching the configured namespaces or the whole cluster. The
built-in autoscaler runs beside it as one task of the same loop, started before kopf and cancelled
after it. `run` is what tests call in-process, with their own stop and ready flags.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence

import kopf

from pixelmesh.operator.context import build_context
from pixelmesh.operator.handlers import build_registry
from pixelmesh.operator.metrics import serve_metrics
from pixelmesh.operator.settings import OperatorSettings, parse_settings

logger = logging.getLogger(__name__)


async def run(
    settings: OperatorSettings,
    *,
    stop_flag: asyncio.Event | None = None,
    ready_flag: asyncio.Event | None = None,
) -> None:
    """Run one operator until `stop_flag` is set (or the process is signalled)."""
    context = build_context(settings)
    registry = build_registry(context)
    liveness = f"http://0.0.0.0:{settings.health_port}/healthz" if settings.health_port else None
    logger.info(
        "Starting the PixelMesh operator for %s, own region %s.",
        "all namespaces" if settings.clusterwide else ", ".join(settings.namespaces),
        settings.region,
    )
    autoscaler = asyncio.get_running_loop().create_task(context.autoscaler.run(), name="autoscaler")
    try:
        await kopf.operator(
            registry=registry,
            clusterwide=settings.clusterwide,
            namespaces=list(settings.namespaces),
            standalone=True,
            liveness_endpoint=liveness,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
        )
    except Exception as error:
        # kopf re-raises whatever any task left in its loop raised, the NATS clients' reconnect
        # attempts included. Once a stop was asked for, a server that went away first (a region's
        # NATS, a test's server) must not turn a clean stop into a failure.
        if stop_flag is None or not stop_flag.is_set():
            raise
        logger.warning("A background task failed while the operator was stopping: %r", error)
    finally:
        autoscaler.cancel()
        await asyncio.gather(autoscaler, return_exceptions=True)
        await context.close()


def main(argv: Sequence[str] | None = None) -> int:
    """The command: parse settings, serve metrics, run until signalled. 0 on a clean stop."""
    try:
        settings = parse_settings(argv)
    except ValueError as error:
        sys.stderr.write(f"{error}\n")
        return 2
    kopf.configure(log_format=kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.FULL)
    if settings.metrics_port:
        serve_metrics(settings.metrics_port)
    asyncio.run(run(settings))
    return 0
