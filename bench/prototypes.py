"""`python -m bench.prototypes`: the worker's hot-path choices, measured against their alternatives.

Each experiment times the worker's way against the alternative on the bench images, on this
machine, and prints both (docs/benchmarks.md, "Findings", records a run):

- `object-read`: nats-py's `ObjectStore.get` against `pixelmesh.objectstore.read_object`, for
  sources stored in 128 KiB (nats-py's default), 512 KiB (`SOURCE_CHUNK_BYTES`) and ~1 MiB chunks.
  `get` reads through an ordered push consumer with flow control, and nats-py answers the server's
  flow-control requests from a task that polls every 0.25 s: every ~2 MB of object the transfer
  stalls for up to 250 ms. It also grows the result with `bytes +=` (quadratic copying).
- `decode`: CPU for the web-set outputs of one image made by the raw-libvips loop (a `thumbnail`
  per output, each shrinking on load), by the worker's executor with one job per output (the same
  decodes) and with all three in one job (one shared decode at the largest usable shrink).
- `concurrency`: libvips threads per image (`vips_concurrency`) with one and two jobs at once.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from bench.corpus import IMAGE_PLAN, BenchImage, ensure_images
from bench.workloads import (
    Workload,
    libvips_save_options,
    libvips_thumbnail_options,
    pixelmesh_pipeline_spec,
    variant_names,
    workload,
)
from pixelmesh.objectstore import SOURCE_CHUNK_BYTES, put_object, read_object

WHITE = [255, 255, 255]


# --- object-read -----------------------------------------------------------------------------------

CHUNK_SIZES = (128 * 1024, SOURCE_CHUNK_BYTES, 1000 * 1024)
"""nats-py's default chunk, ours, and about the largest under nats-server's default `max_payload`."""


async def _timed(read: Callable[[], Awaitable[bytes]], repeats: int, expected: bytes) -> tuple[float, float]:
    """Median wall and CPU seconds (this process) of `read`, checking what it returns."""
    walls, cpus = [], []
    for _ in range(repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        got = await read()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        assert got == expected
    return statistics.median(walls), statistics.median(cpus)


async def _object_read(images: Sequence[tuple[str, bytes]], repeats: int) -> list[dict[str, Any]]:
    """nats-py's `ObjectStore.get` against `pixelmesh.objectstore.read_object`, by chunk size."""
    import nats  # noqa: PLC0415

    from pixelmesh.natsserver import NatsServer  # noqa: PLC0415

    rows = []
    with tempfile.TemporaryDirectory(prefix="pixelmesh-bench-proto-") as temp:
        server = NatsServer.ephemeral(root=Path(temp))
        await server.astart()
        try:
            nc = await nats.connect(server.url)
            js = nc.jetstream()
            store = await js.create_object_store("bench-sources")
            for name, data in images:
                for chunk in CHUNK_SIZES:
                    key = f"{hashlib.sha256(data).hexdigest()}-{chunk}"
                    started = time.perf_counter()
                    await put_object(js, bucket="bench-sources", name=key, data=data, chunk_bytes=chunk)
                    put_ms = (time.perf_counter() - started) * 1000

                    async def stock(key: str = key) -> bytes:
                        return (await store.get(key)).data or b""

                    async def ours(key: str = key) -> bytes:
                        return await read_object(
                            js, stream="OBJ_bench-sources", bucket="bench-sources", name=key, timeout=30
                        )

                    get_wall, get_cpu = await _timed(stock, repeats, data)
                    read_wall, read_cpu = await _timed(ours, repeats, data)
                    rows.append(
                        {
                            "image": name,
                            "mb": round(len(data) / 1e6, 2),
                            "chunk_kib": chunk // 1024,
                            "put_object_ms": round(put_ms, 1),
                            "get_ms": round(get_wall * 1000, 1),
                            "get_cpu_ms": round(get_cpu * 1000, 1),
                            "read_object_ms": round(read_wall * 1000, 1),
                            "read_object_cpu_ms": round(read_cpu * 1000, 1),
                        }
                    )
            await nc.close()
        finally:
            await server.astop()
            server.close()
    return rows


# --- decode ----------------------------------------------------------------------------------------


def outputs_per_thumbnail(item: Workload, data: bytes) -> list[bytes]:
    """What the raw-libvips loop does: one `thumbnail_buffer` per output, each shrinking on load."""
    import pyvips  # noqa: PLC0415

    encoded = []
    for spec in item.outputs:
        width, options = libvips_thumbnail_options(spec)
        thumb = pyvips.Image.thumbnail_buffer(data, width, **options)
        if not spec.format.has_alpha and thumb.hasalpha():
            thumb = thumb.flatten(background=WHITE)
        suffix, save = libvips_save_options(spec)
        encoded.append(thumb.write_to_buffer(suffix, **save))
    return encoded


def outputs_by_worker(item: Workload, data: bytes, *, together: bool) -> list[bytes]:
    """The worker's executor: the workload's variants in one job (shared decode) or one job each."""
    from pixelmesh.worker.pipeline import run_pipeline  # noqa: PLC0415

    spec = pixelmesh_pipeline_spec()
    names = variant_names(item)
    if together:
        return [output.data for output in run_pipeline(spec, data, variants=names)]
    return [run_pipeline(spec, data, variants=[name])[0].data for name in names]


def _cpu_and_wall(function: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds (all threads of this process) of `function`."""
    walls, cpus = [], []
    for _ in range(repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        function()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def decode_experiment(images: Sequence[tuple[str, bytes]], repeats: int) -> list[dict[str, Any]]:
    import pyvips  # noqa: PLC0415

    pyvips.cache_set_max(0)
    item = workload("web-set")
    rows = []
    for name, data in images:
        ways = {
            "raw_loop": functools.partial(outputs_per_thumbnail, item, data),
            "worker_one_job_each": functools.partial(outputs_by_worker, item, data, together=False),
            "worker_shared": functools.partial(outputs_by_worker, item, data, together=True),
        }
        row: dict[str, Any] = {"image": name}
        for way, function in ways.items():
            function()  # warm-up
            _, cpu = _cpu_and_wall(function, repeats)
            row[f"{way}_cpu_ms"] = round(cpu * 1000, 1)
        rows.append(row)
    return rows


# --- concurrency -----------------------------------------------------------------------------------


def concurrency_experiment(images: Sequence[tuple[str, bytes]], jobs: int) -> list[dict[str, Any]]:
    """Images/s and CPU/image of the web-set workload for libvips threads per image x jobs at once."""
    import pyvips  # noqa: PLC0415

    pyvips.cache_set_max(0)
    item = workload("web-set")
    default = pyvips.concurrency_get()
    rows = []
    for vips_threads in (1, 2):
        for lanes in (1, 2):
            pyvips.concurrency_set(vips_threads)
            queue = [data for _ in range(jobs) for _, data in images]
            lock = threading.Lock()

            def lane(queue: list[bytes] = queue, lock: threading.Lock = lock) -> None:
                while True:
                    with lock:
                        if not queue:
                            return
                        data = queue.pop()
                    outputs_per_thumbnail(item, data)

            count = len(queue)
            cpu, wall = time.process_time(), time.perf_counter()
            threads = [threading.Thread(target=lane) for _ in range(lanes)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            rows.append(
                {
                    "vips_concurrency": vips_threads,
                    "jobs_at_once": lanes,
                    "images_per_second": round(count / wall, 2),
                    "cpu_ms_per_image": round(cpu / count * 1000, 1),
                }
            )
    pyvips.concurrency_set(default)
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no rows)"
    keys = list(rows[0])
    widths = {key: max(len(key), *(len(str(row[key])) for row in rows)) for key in keys}
    lines = ["  ".join(key.rjust(widths[key]) for key in keys)]
    lines += ["  ".join(str(row[key]).rjust(widths[key]) for key in keys) for row in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.prototypes", description=__doc__)
    parser.add_argument(
        "experiments", nargs="*", default=["object-read", "decode", "concurrency"], help="which to run"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).resolve().parent / "results" / "prototypes.json"
    )
    args = parser.parse_args(argv)
    plan: tuple[BenchImage, ...] = IMAGE_PLAN
    root = ensure_images(plan)
    images = [(image.name, (root / image.name).read_bytes()) for image in plan]
    everyday = [(name, data) for name, data in images if not name.startswith("huge")]
    found: dict[str, list[dict[str, Any]]] = {}
    if "object-read" in args.experiments:
        found["object-read"] = asyncio.run(_object_read(images, args.repeats))
    if "decode" in args.experiments:
        found["decode"] = decode_experiment(everyday, args.repeats)
    if "concurrency" in args.experiments:
        found["concurrency"] = concurrency_experiment(everyday[:4], max(1, args.repeats // 2))
    for name, rows in found.items():
        print(f"== {name}")
        print(_table(rows))
        print()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(found, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
