"""`python -m pixelmesh.gateway` (and `pixelmesh gateway`): run the gateway until SIGTERM or Ctrl-C.

Settings come from `PIXELMESH_GATEWAY_*` (see `config.py`); the few flags override them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence

from pixelmesh.gateway.app import serve
from pixelmesh.gateway.config import GatewayConfig, parse_regions
from pixelmesh.gateway.logs import configure_logging

logger = logging.getLogger("pixelmesh.gateway")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pixelmesh gateway",
        description="Run the PixelMesh HTTP gateway. Settings come from PIXELMESH_GATEWAY_* variables; "
        "these flags override them.",
    )
    parser.add_argument("--host", help="address to listen on (PIXELMESH_GATEWAY_HOST)")
    parser.add_argument("--port", type=int, help="port to listen on, 0 for any (PIXELMESH_GATEWAY_PORT)")
    parser.add_argument(
        "--regions", help="region=nats-url[,url...];... (PIXELMESH_GATEWAY_REGIONS)", type=parse_regions
    )
    parser.add_argument("--home-region", help="the region served first (PIXELMESH_GATEWAY_HOME_REGION)")
    return parser


async def run(config: GatewayConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with serve(config) as gateway:
        logger.info("The gateway is serving on %s; send SIGTERM to stop.", gateway.url)
        await stop.wait()
        logger.info("The gateway is stopping.")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {
        name: value
        for name, value in (
            ("host", args.host),
            ("port", args.port),
            ("regions", args.regions),
            ("home_region", args.home_region),
        )
        if value is not None
    }
    try:
        config = GatewayConfig.from_env(**overrides)
    except ValueError as error:
        print(error)  # noqa: T201 - the one line a person needs before logging is set up
        return 2
    configure_logging(config.log_level, json_lines=config.log_format == "json")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(config))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
