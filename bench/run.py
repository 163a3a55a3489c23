"""`python -m bench`: run every contender on every workload at each parallelism, then report.

For each parallelism, every contender is started once and runs the workloads in turn. Per workload:
a warm-up pass over the distinct images (every output read back and checked against the workload:
a contender making something else stops the run), then `rounds` measured passes over the images,
the contenders taking turns pass by pass, with the probe around each. Progress goes to stderr;
stdout gets the tables, the machine facts, and, last, one ratio per line. The JSON document goes
to `bench/results/latest.json`.

Caveat: on a shared machine, background load still inflates latency and lowers images/s (CPU-seconds
per image barely move). Turns spread a change in load over all contenders; the load average after
every measured pass is recorded. Compare runs only when it stayed low.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.contenders.base import Contender, SourceImage
from bench.corpus import cache_root, ensure_images, select_images
from bench.machine import machine_info
from bench.measure import ResourceProbe
from bench.report import (
    CellResult,
    RoundResult,
    build_document,
    combine_rounds,
    compute_ratios,
    headline_ratios,
    render_machine,
    render_table,
)
from bench.verify import OutputInfo, output_problems
from bench.workloads import WORKLOADS, Workload, workload

logger = logging.getLogger("bench")

CONTENDER_NAMES: tuple[str, ...] = (
    "raw-libvips",
    "pixelmesh-worker",
    "pixelmesh-gateway",
    "pillow",
    "thumbor",
)
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "latest.json"


class EquivalenceError(RuntimeError):
    """A contender's outputs differ from what the workload asks for."""


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="PixelMesh side by side with raw libvips, Pillow and thumbor on the same photos.",
    )
    parser.add_argument("--quick", action="store_true", help="3 images, 1 round (under 3 minutes)")
    parser.add_argument("--contenders", type=_csv, default=list(CONTENDER_NAMES), help="comma-separated")
    parser.add_argument("--workloads", type=_csv, default=[w.name for w in WORKLOADS], help="comma-separated")
    parser.add_argument("--parallelism", type=lambda t: [int(p) for p in _csv(t)], default=[1, 2])
    parser.add_argument(
        "--rounds", type=int, default=None, help="measured passes over the images (3; quick: 1)"
    )
    parser.add_argument(
        "--worker-layout",
        choices=("threads", "processes"),
        default="threads",
        help="PixelMesh workers for P lanes: one process with P threads, or P processes",
    )
    parser.add_argument(
        "--in-flight",
        type=int,
        default=1,
        help="PixelMesh jobs offered per lane (1: a closed loop like the others; 2: a backlog to hide I/O)",
    )
    parser.add_argument(
        "--vips-concurrency",
        type=int,
        default=0,
        help="libvips threads per image for raw-libvips and the PixelMesh workers "
        "(0: each one's default: libvips' for the loops, the worker's automatic setting)",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the JSON")
    return parser


def make_contender(
    name: str, *, image_root: Path, worker_layout: str, vips_concurrency: int = 0, in_flight: int = 1
) -> Contender:
    """The contender called `name`, not started."""
    if name in ("raw-libvips", "pillow"):
        from bench.contenders.local import LocalContender  # noqa: PLC0415 - contenders load their own stacks

        env = {**os.environ, "VIPS_CONCURRENCY": str(vips_concurrency)} if vips_concurrency else None
        return LocalContender(name, env=env)
    if name == "thumbor":
        from bench.contenders.thumbor import ThumborContender  # noqa: PLC0415
        from bench.thumbor_env import ensure_thumbor_venv  # noqa: PLC0415

        return ThumborContender(ensure_thumbor_venv(cache_root()), image_root)
    from bench.contenders.pixelmesh_stack import WorkerLayout  # noqa: PLC0415

    layout = WorkerLayout(worker_layout)
    worker_env = {"PIXELMESH_VIPS_CONCURRENCY": str(vips_concurrency)} if vips_concurrency else {}
    if name == "pixelmesh-worker":
        from bench.contenders.pixelmesh_worker import PixelMeshWorkerContender  # noqa: PLC0415

        return PixelMeshWorkerContender(layout=layout, worker_env=worker_env, in_flight=in_flight)
    if name == "pixelmesh-gateway":
        from bench.contenders.pixelmesh_gateway import PixelMeshGatewayContender  # noqa: PLC0415

        return PixelMeshGatewayContender(layout=layout, worker_env=worker_env, in_flight=in_flight)
    raise ValueError(f"unknown contender {name!r}; choose from {', '.join(CONTENDER_NAMES)}")


def mean_output_bytes(outputs: dict[str, list[OutputInfo]]) -> dict[str, float]:
    """Mean encoded size per variant over the images of a warm-up pass."""
    sizes: dict[str, list[int]] = {}
    for infos in outputs.values():
        for info in infos:
            sizes.setdefault(info.variant, []).append(info.size)
    return {variant: sum(values) / len(values) for variant, values in sizes.items()}


def warm_up(contender: Contender, item: Workload, images: Sequence[SourceImage]) -> dict[str, float]:
    """One pass over the images, every output checked; the mean encoded size per variant."""
    warm = contender.run(item, images, describe=True)
    for image in images:
        problems = output_problems(item, image.size, warm.outputs.get(image.name, []))
        if problems:
            raise EquivalenceError(
                f"{contender.name} made different outputs for {item.name} of {image.name}: "
                + "; ".join(problems)
            )
    return mean_output_bytes(warm.outputs)


def measure_round(contender: Contender, item: Workload, images: Sequence[SourceImage]) -> RoundResult:
    """One measured pass over the images, with the probe around it."""
    probe = ResourceProbe(contender.processes())
    probe.start()
    started = time.perf_counter()
    measured = contender.run(item, images)
    wall = time.perf_counter() - started
    usage = probe.stop()
    return RoundResult(
        wall_seconds=wall,
        latencies=tuple(measured.latencies),
        cpu_seconds=dict(usage.cpu_seconds),
        peak_rss_bytes=dict(usage.peak_rss_bytes),
        load1=os.getloadavg()[0],
    )


def rotated(items: Sequence[Contender], by: int) -> list[Contender]:
    """`items` starting at position `by` (mod its length): each round starts with another contender."""
    if not items:
        return []
    shift = by % len(items)
    return [*items[shift:], *items[:shift]]


def run_matrix(
    *,
    contenders: Sequence[str],
    workloads: Sequence[Workload],
    parallelisms: Sequence[int],
    images: Sequence[SourceImage],
    rounds: int,
    factory: Callable[[str], Contender],
    progress: Callable[[str], None],
) -> tuple[list[CellResult], dict[str, Any], list[dict[str, Any]]]:
    """Every cell; the contenders' settings; the load average after each measured round.

    All contenders of one parallelism run side by side (idle ones cost memory, not CPU), and the
    measured rounds alternate between them, each round starting with the next contender, so a
    change in background load lands on every contender alike instead of on whichever ran then.
    """
    results: list[CellResult] = []
    settings: dict[str, Any] = {}
    loads: list[dict[str, Any]] = []
    for parallelism in parallelisms:
        started: list[Contender] = []
        try:
            for name in contenders:
                contender = factory(name)
                progress(f"Starting {name} with parallelism {parallelism}.")
                started.append(contender)
                contender.start(parallelism)
                contender.prepare(images)
                settings[name] = contender.settings()
            for item in workloads:
                sizes = {contender.name: warm_up(contender, item, images) for contender in started}
                measured: dict[str, list[RoundResult]] = {contender.name: [] for contender in started}
                for number in range(rounds):
                    for contender in rotated(started, number):
                        result = measure_round(contender, item, images)
                        measured[contender.name].append(result)
                        loads.append(
                            {
                                "contender": contender.name,
                                "workload": item.name,
                                "parallelism": parallelism,
                                "round": number,
                                "load1": round(result.load1, 2),
                            }
                        )
                for contender in started:
                    cell = combine_rounds(
                        contender.name,
                        item.name,
                        parallelism,
                        measured[contender.name],
                        sizes[contender.name],
                    )
                    results.append(cell)
                    progress(
                        f"{contender.name} {item.name} p{parallelism}: "
                        f"{cell.images_per_second:.2f} images/s, "
                        f"{cell.cpu_seconds_per_image:.3f} cpu-s/image, p50 {cell.p50_seconds * 1000:.0f} ms."
                    )
        finally:
            for contender in reversed(started):
                contender.stop()
    return results, settings, loads


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("pyvips").setLevel(logging.WARNING)
    unknown = [name for name in args.contenders if name not in CONTENDER_NAMES]
    if unknown:
        print(f"unknown contenders {unknown}; choose from {', '.join(CONTENDER_NAMES)}", file=sys.stderr)
        return 2
    workloads = [workload(name) for name in args.workloads]
    rounds = args.rounds or (1 if args.quick else 3)
    started_at = datetime.now(UTC)
    began = time.monotonic()
    machine = machine_info()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - began:6.1f}s] {message}", file=sys.stderr, flush=True)

    progress(f"Load average at start: {machine['load_average_at_start']}.")
    plan = select_images(quick=args.quick)
    image_root = ensure_images(plan)
    images = [SourceImage(image.name, image_root / image.name, image.width, image.height) for image in plan]
    results, settings, loads = run_matrix(
        contenders=args.contenders,
        workloads=workloads,
        parallelisms=args.parallelism,
        images=images,
        rounds=rounds,
        factory=lambda name: make_contender(
            name,
            image_root=image_root,
            worker_layout=args.worker_layout,
            vips_concurrency=args.vips_concurrency,
            in_flight=args.in_flight,
        ),
        progress=progress,
    )
    run = {
        "command": shlex.join(["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)]),
        "mode": "quick" if args.quick else "full",
        "started_at": started_at.isoformat(),
        "duration_seconds": time.monotonic() - began,
        "rounds": rounds,
        "parallelism": args.parallelism,
        "worker_layout": args.worker_layout,
        "vips_concurrency": args.vips_concurrency or "default",
        "in_flight": args.in_flight,
        "images": [{**image.to_json(), "bytes": image.path.stat().st_size} for image in images],
        "load_average_at_end": [round(value, 2) for value in os.getloadavg()],
        "load_by_round": loads,
    }
    document = build_document(machine=machine, run=run, settings=settings, results=results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n")

    for item in workloads:
        print(render_table(item.name, f"{item.description}; {len(images)} images x {rounds} rounds", results))
        print()
    print(render_machine({"machine": machine, "load_average_at_end": run["load_average_at_end"]}))
    print(f"results: {args.output}")
    print()
    for ratio in headline_ratios(compute_ratios(results)):
        print(ratio.line())
    sys.stdout.flush()
    return 0
