"""The `pixelmesh` command.

The parser is built from argparse alone and each subcommand's module is imported only when that
subcommand runs, so `pixelmesh --help` answers at once instead of loading libvips, NATS and
aiohttp. `worker`, `operator` and `gateway` hand the rest of the command line to that component's
own `main` (its own flags and `--help`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

COMPONENTS = {
    "worker": ("pixelmesh.worker.__main__", "run a worker of one pipeline (PIXELMESH_* settings)"),
    "operator": ("pixelmesh.operator.__main__", "run the operator (kopf) against a Kubernetes cluster"),
    "gateway": ("pixelmesh.gateway.__main__", "run the HTTP gateway (PIXELMESH_GATEWAY_* settings)"),
}

EPILOG = """\
examples:
  pixelmesh demo                                   the whole platform on this machine, with sample images
  pixelmesh up --config examples/                  run the local stack until Ctrl-C
  pixelmesh submit --pipeline demo/thumbnails photos/ --out out/
  pixelmesh status 3f2a...                         a job's state and outputs
  pixelmesh sign-url --pipeline demo/thumbnails --variant small photo.jpg --upload

With the local stack running, submit/status/sign-url find its URL and keys by themselves.
"""


def _connection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("gateway")
    group.add_argument(
        "--gateway",
        metavar="URL",
        help="gateway base URL (PIXELMESH_GATEWAY_URL; default: the local stack's)",
    )
    group.add_argument("--api-key", help="API key (PIXELMESH_API_KEY; default: the local stack's)")
    group.add_argument(
        "--data", type=Path, metavar="DIR", help="the local stack's data directory, to find its URL and keys"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pixelmesh",
        description="PixelMesh: image processing on libvips workers fed by NATS JetStream.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    submit = commands.add_parser(
        "submit",
        help="submit images to a pipeline, with progress and a summary",
        description="Submit images to a pipeline, wait for each, download the outputs, and print a summary. "
        "Exits 1 if any image failed.",
    )
    submit.add_argument("--pipeline", required=True, metavar="NS/NAME", help="the ImagePipeline")
    submit.add_argument(
        "files", nargs="+", type=Path, metavar="FILE", help="images, or directories of images"
    )
    submit.add_argument(
        "--out", type=Path, metavar="DIR", help="write every output here (default: do not download)"
    )
    submit.add_argument("--concurrency", type=int, default=16, help="submissions in flight (default: 16)")
    submit.add_argument(
        "--wait", type=float, default=300.0, metavar="SECONDS", help="give up on a job after this"
    )
    submit.add_argument("--variant", action="append", dest="variants", help="only this variant (repeatable)")
    submit.add_argument(
        "--no-progress", action="store_true", help="no progress bar (the summary still prints)"
    )
    submit.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    _connection_options(submit)

    status = commands.add_parser("status", help="show a job's state and outputs", description="Show a job.")
    status.add_argument("job", metavar="JOB", help="the job id")
    status.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="wait for it to finish")
    status.add_argument("--json", action="store_true", help="print the job as JSON")
    _connection_options(status)

    sign = commands.add_parser(
        "sign-url",
        help="make a signed on-the-fly image URL",
        description="Print a signed URL that renders VARIANT of a stored source on request.",
    )
    sign.add_argument("--pipeline", required=True, metavar="NS/NAME")
    sign.add_argument("--variant", required=True)
    sign.add_argument("source", metavar="SOURCE", help="a stored source's sha256, or an image file")
    sign.add_argument("--expires-in", type=int, metavar="SECONDS", help="the URL stops working after this")
    sign.add_argument("--upload", action="store_true", help="store the file first (SOURCE must be a file)")
    sign.add_argument("--key", help="signing key (PIXELMESH_SIGNING_KEY; default: the local stack's)")
    _connection_options(sign)

    up = commands.add_parser(
        "up",
        help="run the whole platform on this machine until Ctrl-C",
        description="Run NATS, the operator's reconciler with local worker processes, and the gateway, "
        "on the ImagePipeline/RegionPool YAML files in --config.",
    )
    _stack_options(up)

    demo = commands.add_parser(
        "demo",
        help="run the local stack on the examples with generated sample images",
        description="Start the local stack on examples/, submit generated sample photos, print the summary, "
        "leave the outputs in ./demo-output/, then stop.",
    )
    _stack_options(demo)
    demo.add_argument("--images", type=int, default=12, help="how many sample images (default: 12)")
    demo.add_argument("--out", type=Path, default=Path("demo-output"), help="where outputs go")
    demo.add_argument("--keep-running", action="store_true", help="keep the stack running after the demo")

    for name, (_, summary) in COMPONENTS.items():
        commands.add_parser(name, help=summary, add_help=False)
    return parser


def _stack_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, default=None, metavar="DIR", help="YAML files (default: examples/)"
    )
    parser.add_argument(
        "--data", type=Path, default=None, metavar="DIR", help="data directory (kept across runs)"
    )
    parser.add_argument("--port", type=int, default=None, help="gateway port (default: 8080, 0 for any)")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="fixed worker processes per pipeline (default: autoscaled from the backlog)",
    )


COMMAND_MODULES = {
    "submit": "pixelmesh.cli.submit",
    "status": "pixelmesh.cli.status",
    "sign-url": "pixelmesh.cli.sign",
    "up": "pixelmesh.cli.stack",
    "demo": "pixelmesh.cli.stack",
}


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in COMPONENTS:
        module = importlib.import_module(COMPONENTS[args_list[0]][0])
        component_main: Callable[[Sequence[str]], int] = module.main
        return component_main(args_list[1:])
    args = build_parser().parse_args(args_list)
    module = importlib.import_module(COMMAND_MODULES[args.command])
    run: Callable[[argparse.Namespace], int] = module.run
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130
