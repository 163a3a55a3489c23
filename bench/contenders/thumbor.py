"""`thumbor`: thumbor 7.8.0 over HTTP, one server process per lane, file loader, nothing cached.

Each lane keeps one HTTP/1.1 keep-alive connection to its own thumbor process and asks for the
workload's outputs one after another (thumbor makes one output per request, so a three-output
workload decodes the source three times, as it does in production). An image's latency runs from
its first request to its last response.
"""

from __future__ import annotations

import http.client
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.contenders.base import Contender, RunResult, SourceImage
from bench.measure import run_closed_loop
from bench.thumbor_env import LOOPBACK, THUMBOR_PILLOW_VERSION, THUMBOR_VERSION, ThumborServer, write_config
from bench.verify import describe_output
from bench.workloads import WORKLOADS, Workload, thumbor_path

NAME = "thumbor"


class ThumborContender(Contender):
    """P thumbor processes and P client lanes."""

    name = NAME

    def __init__(self, thumbor: Path, image_root: Path) -> None:
        self._thumbor = thumbor
        self._image_root = image_root
        self._servers: list[ThumborServer] = []
        self._temp: tempfile.TemporaryDirectory[str] | None = None
        self._connections: dict[int, http.client.HTTPConnection] = {}

    def start(self, parallelism: int) -> None:
        self._temp = tempfile.TemporaryDirectory(prefix="pixelmesh-bench-thumbor-")
        avif_speeds = {spec.avif_speed for item in WORKLOADS for spec in item.outputs}
        config = write_config(Path(self._temp.name), self._image_root, avif_speed=min(avif_speeds))
        try:
            for _ in range(parallelism):
                server = ThumborServer(self._thumbor, config)
                self._servers.append(server)
                server.start()
        except BaseException:
            self.stop()
            raise

    def processes(self) -> dict[str, list[int]]:
        return {"thumbor": [server.pid for server in self._servers]}

    def _get(self, lane: int, path: str) -> bytes:
        connection = self._connections.get(lane)
        if connection is None:
            connection = http.client.HTTPConnection(LOOPBACK, self._servers[lane].port, timeout=120)
            self._connections[lane] = connection
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"thumbor answered {response.status} to {path}: {body[:200]!r}")
        return body

    def run(self, item: Workload, images: Sequence[SourceImage], *, describe: bool = False) -> RunResult:
        def one(lane: int, image: SourceImage) -> list[tuple[str, bytes]]:
            return [(spec.name, self._get(lane, thumbor_path(spec, image.name))) for spec in item.outputs]

        timed = run_closed_loop(images, len(self._servers), one)
        outputs = {}
        if describe:
            outputs = {
                images[result.index].name: [describe_output(variant, data) for variant, data in result.value]
                for result in timed
            }
        return RunResult(latencies=[result.seconds for result in timed], outputs=outputs)

    def stop(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()
        for server in self._servers:
            server.stop()
        self._servers.clear()
        if self._temp is not None:
            self._temp.cleanup()
            self._temp = None

    def settings(self) -> dict[str, Any]:
        return {
            "thumbor": THUMBOR_VERSION,
            "pillow": THUMBOR_PILLOW_VERSION,
            "lanes": "one thumbor process per lane",
            "loader": "file",
            "storage": "none",
            "result_storage": "none",
        }
