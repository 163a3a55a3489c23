"""`python -m bench.prototypes`: measured alternatives for the worker's hot path, outside `worker/`.

Each experiment times the worker's current way against a candidate on the bench images, on this
machine, and prints both, so the change can be judged by its numbers before anyone touches the
worker:

- `object-read`: nats-py's `ObjectStore.get` against reading the chunks with one pull fetch.
  `get` reads through an ordered push consumer with flow control, and nats-py answers the server's
  flow-control requests from a task that polls every 0.25 s: every ~2 MB of object the transfer
  stalls for up to 250 ms. It also grows the result with `bytes +=` (quadratic copying).
- `decode`: for a three-output workload, a `thumbnail` per output (shrink-on-load each time, what
  raw-libvips and the worker do) against decoding once at the smallest shrink that serves every
  output and making each output from that in-memory image.
- `concurrency`: libvips threads per image (`vips_concurrency`) with one and two jobs at once.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import hashlib
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.corpus import IMAGE_PLAN, BenchImage, ensure_images
from bench.workloads import Workload, libvips_save_options, libvips_thumbnail_options, scale_factor, workload

WHITE = [255, 255, 255]


# --- object-read -----------------------------------------------------------------------------------


async def read_chunks_by_pull(js: Any, bucket: str, info: Any) -> bytes:
    """The bytes of the object `info` describes, read with one ephemeral pull consumer.

    Fetches all of its chunks, checks the digest like `ObjectStore.get`, and deletes the consumer
    rather than leaving it to expire, so a busy worker does not pile consumers up on the server.
    """
    from nats.js import api  # noqa: PLC0415

    if not info.size:
        return b""
    stream = f"OBJ_{bucket}"
    config = api.ConsumerConfig(
        ack_policy=api.AckPolicy.NONE,
        deliver_policy=api.DeliverPolicy.ALL,
        inactive_threshold=30.0,
        mem_storage=True,
    )
    subscription = await js.pull_subscribe(f"$O.{bucket}.C.{info.nuid}", stream=stream, config=config)
    try:
        parts: list[bytes] = []
        while len(parts) < info.chunks:
            messages = await subscription.fetch(info.chunks - len(parts), timeout=10)
            parts.extend(message.data for message in messages)
    finally:
        consumer = (await subscription.consumer_info()).name
        await subscription.unsubscribe()
        await js.delete_consumer(stream, consumer)
    data = b"".join(parts)
    expected = base64.urlsafe_b64decode(info.digest.split("=", 1)[1])
    if hashlib.sha256(data).digest() != expected:
        raise RuntimeError(f"object {info.name} of {bucket} failed its digest check")
    return data


async def read_object_by_pull(js: Any, bucket: str, name: str) -> bytes:
    """An object's bytes by name, through `read_chunks_by_pull`."""
    store = await js.object_store(bucket)
    return await read_chunks_by_pull(js, bucket, await store.get_info(name))


async def _object_read(images: Sequence[tuple[str, bytes]], repeats: int) -> list[dict[str, Any]]:
    import nats  # noqa: PLC0415

    from pixelmesh.api import streams  # noqa: PLC0415
    from pixelmesh.natsserver import NatsServer  # noqa: PLC0415
    from pixelmesh.operator.clients.jetstream import ensure_region_buckets  # noqa: PLC0415
    from pixelmesh.operator.jetstream import RegionBucketSettings  # noqa: PLC0415

    rows = []
    with tempfile.TemporaryDirectory(prefix="pixelmesh-bench-proto-") as temp:
        server = NatsServer.ephemeral(root=Path(temp))
        await server.astart()
        try:
            nc = await nats.connect(server.url)
            js = nc.jetstream()
            await ensure_region_buckets(js, RegionBucketSettings())
            store = await js.object_store(streams.SOURCES_BUCKET)
            for name, data in images:
                key = hashlib.sha256(data).hexdigest()
                started = time.perf_counter()
                await store.put(key, data)
                put_ms = (time.perf_counter() - started) * 1000
                stock, pulled = [], []
                for _ in range(repeats):
                    started = time.perf_counter()
                    got = (await store.get(key)).data
                    stock.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    fast = await read_object_by_pull(js, streams.SOURCES_BUCKET, key)
                    pulled.append(time.perf_counter() - started)
                    assert got == data
                    assert fast == data
                rows.append(
                    {
                        "image": name,
                        "mb": round(len(data) / 1e6, 2),
                        "put_ms": round(put_ms, 1),
                        "get_ms": round(statistics.median(stock) * 1000, 1),
                        "pull_ms": round(statistics.median(pulled) * 1000, 1),
                    }
                )
            await nc.close()
        finally:
            await server.astop()
            server.close()
    return rows


# --- decode ----------------------------------------------------------------------------------------


def outputs_per_thumbnail(item: Workload, data: bytes) -> list[bytes]:
    """The worker's way: one `thumbnail_buffer` per output, each shrinking on load."""
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


def outputs_from_one_decode(item: Workload, data: bytes) -> list[bytes]:
    """Decode once at the largest shrink-on-load that serves every output, then thumbnail from memory."""
    import pyvips  # noqa: PLC0415

    header = pyvips.Image.new_from_buffer(data, "")
    scale = max(scale_factor(spec, header.width, header.height) for spec in item.outputs)
    shrink = 1
    while shrink < 8 and scale * shrink * 2 <= 1.0:
        shrink *= 2
    loader = str(header.get("vips-loader"))
    options = {"shrink": shrink} if loader.startswith("jpegload") and shrink > 1 else {}
    decoded = pyvips.Image.new_from_buffer(data, "", access="sequential", **options).copy_memory()
    encoded = []
    for spec in item.outputs:
        width, thumbnail_options = libvips_thumbnail_options(spec)
        thumb = decoded.thumbnail_image(width, **thumbnail_options)
        if not spec.format.has_alpha and thumb.hasalpha():
            thumb = thumb.flatten(background=WHITE)
        suffix, save = libvips_save_options(spec)
        encoded.append(thumb.write_to_buffer(suffix, **save))
    return encoded


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
        outputs_per_thumbnail(item, data)  # warm-up
        outputs_from_one_decode(item, data)
        per_wall, per_cpu = _cpu_and_wall(functools.partial(outputs_per_thumbnail, item, data), repeats)
        one_wall, one_cpu = _cpu_and_wall(functools.partial(outputs_from_one_decode, item, data), repeats)
        rows.append(
            {
                "image": name,
                "per_output_ms": round(per_wall * 1000, 1),
                "per_output_cpu_ms": round(per_cpu * 1000, 1),
                "one_decode_ms": round(one_wall * 1000, 1),
                "one_decode_cpu_ms": round(one_cpu * 1000, 1),
            }
        )
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
