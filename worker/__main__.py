"""`pixelmesh-worker` / `python -m pixelmesh.worker`: run one pipeline's worker.

Settings come from `PIXELMESH_*` variables (see `config.WorkerConfig`); the few flags below override
them, for running a worker by hand. Exit codes: 0 after a clean drain, 2 for a configuration error.

libvips keeps its worker threads alive when the interpreter exits, and a job still running past the
grace period would make the interpreter wait for it; in that one case the process exits at once
(after flushing its logs) instead of overrunning the grace period Kubernetes gives it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from pixelmesh.worker.config import ConfigError, WorkerConfig, load_pipeline_file
from pixelmesh.worker.logs import configure_logging

logger = logging.getLogger("pixelmesh.worker")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pixelmesh-worker",
        description="Run a PixelMesh worker: libvips pipelines fed by a NATS JetStream pull consumer. "
        "Settings come from PIXELMESH_* environment variables; these flags override them.",
    )
    parser.add_argument("--pipeline-file", type=Path, help="the rendered pipeline (PIXELMESH_PIPELINE_FILE)")
    parser.add_argument(
        "--nats-url",
        action="append",
        dest="nats_urls",
        help="a NATS server URL, repeatable (PIXELMESH_NATS_URLS)",
    )
    parser.add_argument("--region", help="the region this worker serves (PIXELMESH_REGION)")
    parser.add_argument("--worker-name", help="this worker's name (PIXELMESH_WORKER_NAME)")
    parser.add_argument(
        "--threads", type=int, help="libvips threads, 0 = one per CPU plus one (PIXELMESH_THREADS)"
    )
    parser.add_argument("--concurrency", type=int, help="jobs in flight (PIXELMESH_CONCURRENCY)")
    parser.add_argument(
        "--metrics-port", type=int, help="port of /metrics and probes (PIXELMESH_METRICS_PORT)"
    )
    parser.add_argument("--log-format", choices=("json", "text"), help="log format (PIXELMESH_LOG_FORMAT)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides = {name: value for name, value in vars(args).items() if value is not None}
    if "nats_urls" in overrides:
        overrides["nats_urls"] = tuple(overrides["nats_urls"])
    try:
        config = WorkerConfig.from_env(**overrides)
    except ConfigError as exc:
        print(f"pixelmesh-worker: {exc}", file=sys.stderr)  # noqa: T201 - logging is not set up yet
        return 2
    configure_logging(
        level=config.log_level,
        fmt=config.log_format,
        static={"worker": config.worker_name, "region": config.region},
    )
    try:
        revision = load_pipeline_file(config.pipeline_file)
    except ConfigError as exc:
        logger.error("The worker cannot start: %s", exc)  # noqa: TRY400 - the message is the whole story
        return 2
    logger.info(
        "Worker %s starting for pipeline %s generation %d in region %s.",
        config.worker_name,
        revision.ref,
        revision.generation,
        config.region,
    )

    # Imported here: loading libvips takes a moment, and a configuration error should not wait for it.
    from pixelmesh.worker.libvips import configure_libvips  # noqa: PLC0415
    from pixelmesh.worker.service import serve  # noqa: PLC0415

    configure_libvips(concurrency=config.effective_vips_concurrency)
    code = asyncio.run(serve(config, revision))
    if any(t.name.startswith("libvips") and t.is_alive() for t in threading.enumerate()):
        logging.shutdown()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
