"""Running an in-process contender (`raw-libvips`, `pillow`) in a child process of its own.

Problem: a loop in the driver's process would share its CPU accounting, memory and GIL with the
driver. Approach: the driver starts `python -m bench.contenders.local ENGINE LANES`; the child
imports the engine once, then answers one JSON line per request (a workload and a list of images)
with the latency of each image, timed inside the child around the engine's work, and, when asked,
a description of each output. The probe measures the child's PID.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import IO, Any

from bench.contenders.base import Contender, RunResult, SourceImage
from bench.measure import run_closed_loop
from bench.verify import OutputInfo, describe_output
from bench.workloads import ImageFormat, Workload, workload

ENGINES: dict[str, str] = {
    "raw-libvips": "bench.contenders.raw_libvips",
    "pillow": "bench.contenders.pillow",
}


def _load_engine(name: str) -> ModuleType:
    return importlib.import_module(ENGINES[name])


def serve(engine_name: str, lanes: int, requests: IO[str], answers: IO[str]) -> None:
    """The child's loop: one JSON request per line in, one JSON answer per line out."""
    engine = _load_engine(engine_name)
    process: Callable[[Workload, SourceImage], list[tuple[str, bytes]]] = engine.process
    settings = engine.prepare()
    answers.write(json.dumps({"ready": True, "settings": settings}) + "\n")
    answers.flush()
    for line in requests:
        request = json.loads(line)
        item = workload(request["workload"])
        images = [SourceImage.from_json(data) for data in request["images"]]

        def one(_lane: int, image: SourceImage, item: Workload = item) -> list[tuple[str, bytes]]:
            return process(item, image)

        try:
            timed = run_closed_loop(images, lanes, one)
        except Exception as exc:  # reported to the driver, which stops the run with it
            answers.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")
            answers.flush()
            continue
        answer: dict[str, Any] = {"latencies": [result.seconds for result in timed]}
        if request.get("describe"):
            answer["outputs"] = {
                images[result.index].name: [
                    describe_output(variant, data).to_json() for variant, data in result.value
                ]
                for result in timed
            }
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


def output_from_json(data: dict[str, Any]) -> OutputInfo:
    image_format = ImageFormat(data["format"]) if data["format"] else None
    return OutputInfo(data["variant"], image_format, data["width"], data["height"], data["bytes"])


class LocalContender(Contender):
    """Drives an engine's child process."""

    def __init__(self, name: str, *, env: dict[str, str] | None = None) -> None:
        if name not in ENGINES:
            raise ValueError(f"no local engine called {name}")
        self.name = name
        self._env = env
        self._process: subprocess.Popen[str] | None = None
        self._log: IO[bytes] | None = None
        self._settings: dict[str, Any] = {}

    def start(self, parallelism: int) -> None:
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the child
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.contenders.local", self.name, str(parallelism)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=self._env,
            cwd=Path(__file__).resolve().parents[2],
        )
        ready = self._read_answer()
        self._settings = {"lanes": "threads in one process", **ready["settings"]}

    def _read_answer(self) -> dict[str, Any]:
        assert self._process is not None
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.name} runner exited: {self._stderr_tail()}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"the {self.name} runner failed: {answer['error']}")
        return answer

    def _stderr_tail(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-2000:]

    def processes(self) -> dict[str, list[int]]:
        return {"runner": [self._process.pid]} if self._process is not None else {}

    def run(self, item: Workload, images: Sequence[SourceImage], *, describe: bool = False) -> RunResult:
        assert self._process is not None
        assert self._process.stdin is not None
        request = {
            "workload": item.name,
            "images": [image.to_json() for image in images],
            "describe": describe,
        }
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        answer = self._read_answer()
        outputs = {
            name: [output_from_json(data) for data in infos]
            for name, infos in answer.get("outputs", {}).items()
        }
        return RunResult(latencies=list(answer["latencies"]), outputs=outputs)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            assert process.stdin is not None
            process.stdin.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    def settings(self) -> dict[str, Any]:
        return self._settings


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m bench.contenders.local ENGINE LANES`: serve requests on stdin."""
    args = list(sys.argv[1:] if argv is None else argv)
    serve(args[0], int(args[1]), sys.stdin, sys.stdout)


if __name__ == "__main__":
    main()
