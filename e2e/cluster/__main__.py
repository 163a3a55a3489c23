"""Command line: `python -m e2e.cluster build` and `python -m e2e.cluster up`.

`build` is what `make` runs before the tests: it builds whatever binaries are
missing or stale and prints their directory, and does nothing else when all are
current. `up` runs one control plane for a human (or a script) until Ctrl-C or
SIGTERM: the kubeconfig path is the only line on stdout, so
`KUBECONFIG=$(python -m e2e.cluster up &)` style wrappers can read it.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from e2e.cluster.binaries import ensure_binaries
from e2e.cluster.control_plane import ControlPlane, ControlPlaneError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.cluster", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build", help="build the binaries if missing; print their directory")
    up = commands.add_parser("up", help="run a control plane until Ctrl-C; print its kubeconfig")
    up.add_argument("--dir", type=Path, help="directory to run in (kept afterwards); default: a temp dir")
    up.add_argument(
        "--no-controller-manager",
        action="store_true",
        help="run only etcd and kube-apiserver (no Deployment controller, no garbage collection)",
    )
    args = parser.parse_args(argv)

    if args.command == "build":
        print(ensure_binaries(log=sys.stderr).bin_dir)
        return 0
    return _up(args.dir, controller_manager=not args.no_controller_manager)


def _up(directory: Path | None, *, controller_manager: bool) -> int:
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    with ControlPlane(directory, controller_manager=controller_manager) as plane:
        print(plane.kubeconfig, flush=True)
        print(
            f"Kubernetes {plane.kubernetes_version} is ready at {plane.server} "
            f"after {plane.startup_seconds:.1f} s (logs in {plane.directory / 'logs'}).\n"
            f"  export KUBECONFIG={plane.kubeconfig}\n"
            "Press Ctrl-C to stop it.",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(1.0):
            try:
                plane.check_running()
            except ControlPlaneError as error:
                print(error, file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
