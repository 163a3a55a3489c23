"""Workers as local processes, for the local stack (`pixelmesh up`): no cluster, same reconciler.

Each pipeline x region gets a directory under the data directory holding its rendered pipeline
file (the same bytes the ConfigMap would hold) and one log file per worker. A worker is
`python -m pixelmesh.worker` with the same `PIXELMESH_*` environment the Deployment would give its
pods, except what only a machine can say: the pipeline file's path, a free metrics port, the
worker's name.

- `apply` writes the pipeline file and starts the count the reconciler asked for if none run; when
  the pipeline revision or the workers' environment changes (a pod template change, for a
  Deployment), the workers are replaced: new ones started, then old ones stopped.
- `scale` starts or stops processes (newest stopped first); processes that exited are started again
  on the next `apply` or `scale`, as a ReplicaSet would.
- `observe` counts a worker ready when its `/readyz` answers 200.

Processes are stopped by PID: SIGTERM, then SIGKILL after the drain timeout and a margin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import aiohttp

from pixelmesh.api.messages import PipelineRef
from pixelmesh.api.resources import duration_seconds
from pixelmesh.operator import names
from pixelmesh.operator.builders.hashing import content_hash
from pixelmesh.operator.builders.pipeline_file import render_pipeline_file, revision_hash
from pixelmesh.operator.builders.workers import DRAIN_MARGIN_SECONDS, worker_env
from pixelmesh.operator.runtime import Applied, PlacedWorkers, RuntimeAction, WorkerObservation
from pixelmesh.operator.target import WorkerKey, WorkerTarget

logger = logging.getLogger(__name__)

READY_TIMEOUT = 1.0
PIPELINE_FILE = "pipeline.json"

ArgvFor = Callable[[WorkerTarget], Sequence[str]]


def default_worker_argv(target: WorkerTarget) -> list[str]:
    """`python -m pixelmesh.worker` with this interpreter."""
    return [sys.executable, "-m", "pixelmesh.worker"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def process_env(target: WorkerTarget, pipeline_file: Path, worker_name: str, port: int) -> dict[str, str]:
    """The Deployment's environment, with the values only this machine knows filled in."""
    env: dict[str, str] = {}
    for variable in worker_env(target):
        if "value" in variable:
            env[variable["name"]] = str(variable["value"])
    env[names.ENV_PIPELINE_FILE] = str(pipeline_file)
    env[names.ENV_WORKER_NAME] = worker_name
    env[names.ENV_METRICS_PORT] = str(port)
    env.pop(names.ENV_NATS_CREDENTIALS, None)
    return env


@dataclass
class WorkerProcess:
    """One worker process this runtime started."""

    name: str
    popen: subprocess.Popen[bytes]
    port: int
    revision: str
    log: IO[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None


@dataclass
class WorkerGroup:
    """One pipeline's workers in one region."""

    target: WorkerTarget
    directory: Path
    replicas: int
    revision: str = ""
    processes: list[WorkerProcess] = field(default_factory=list)
    serial: int = 0


class ProcessRuntime:
    """Runs workers as child processes of this one.

    `data_dir` holds one directory per pipeline and region; `extra_env` is added to every worker's
    environment (e.g. `PIXELMESH_LOG_FORMAT=text`); `argv_for` replaces the worker command.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        argv_for: ArgvFor = default_worker_argv,
        extra_env: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.data_dir = data_dir
        self._argv_for = argv_for
        self._extra_env = dict(extra_env or {})
        self._host = host
        self._groups: dict[WorkerKey, WorkerGroup] = {}
        self._lock = asyncio.Lock()

    # --- the runtime protocol -------------------------------------------------------------------

    async def apply(self, target: WorkerTarget, replicas: int) -> Applied:
        async with self._lock:
            key = WorkerKey(target.ref, target.region)
            actions: list[RuntimeAction] = []
            group = self._groups.get(key)
            if group is None:
                directory = self.data_dir / target.ref.namespace / target.ref.name / target.region
                group = WorkerGroup(target=target, directory=directory, replicas=replicas)
                self._groups[key] = group
                actions.append(
                    RuntimeAction("Created", "WorkerSet", target.names.workers, f"{replicas} replicas")
                )
            group.target = target
            pipeline_file = group.directory / PIPELINE_FILE
            text = render_pipeline_file(target.revision)
            if not pipeline_file.is_file() or pipeline_file.read_text() != text:
                group.directory.mkdir(parents=True, exist_ok=True)
                temporary = pipeline_file.with_suffix(".tmp")
                temporary.write_text(text)
                temporary.replace(pipeline_file)
            new_revision = self._launch_hash(target)
            if group.revision and group.revision != new_revision:
                actions.append(
                    RuntimeAction("Updated", "WorkerSet", target.names.workers, "new worker revision")
                )
            group.revision = new_revision
            actions += await self._converge(group)
            return Applied(await self._observe(group), actions)

    async def scale(self, target: WorkerTarget, replicas: int) -> RuntimeAction | None:
        async with self._lock:
            group = self._groups.get(WorkerKey(target.ref, target.region))
            if group is None or group.replicas == replicas:
                return None
            before, group.replicas = group.replicas, replicas
            await self._converge(group)
            logger.info(
                "Scaled the workers of ImagePipeline %s in region %s from %d to %d processes.",
                target.ref,
                target.region,
                before,
                replicas,
            )
            return RuntimeAction(
                "Scaled", "WorkerSet", target.names.workers, f"{before} -> {replicas} replicas"
            )

    async def observe(self, target: WorkerTarget) -> WorkerObservation:
        group = self._groups.get(WorkerKey(target.ref, target.region))
        if group is None:
            return WorkerObservation()
        return await self._observe(group)

    async def placed(self, ref: PipelineRef) -> list[PlacedWorkers]:
        return sorted(
            (
                PlacedWorkers(pool=g.target.placement.pool, region=key.region)
                for key, g in self._groups.items()
                if key.ref == ref
            ),
            key=lambda p: p.region,
        )

    async def remove(self, ref: PipelineRef, region: str) -> list[RuntimeAction]:
        async with self._lock:
            group = self._groups.pop(WorkerKey(ref, region), None)
            if group is None:
                return []
            await self._stop(group, list(group.processes))
            shutil.rmtree(group.directory, ignore_errors=True)
            return [RuntimeAction("Deleted", "WorkerSet", group.target.names.workers, f"region {region}")]

    # --- for the local stack and tests ------------------------------------------------------------

    def pids(self, ref: PipelineRef | None = None) -> list[int]:
        """PIDs of running workers (of one pipeline, or all)."""
        return [
            p.pid
            for key, group in self._groups.items()
            if ref is None or key.ref == ref
            for p in group.processes
            if p.running()
        ]

    def worker_ports(self, ref: PipelineRef, region: str) -> list[int]:
        """Metrics ports of the running workers of a pipeline in a region."""
        group = self._groups.get(WorkerKey(ref, region))
        return [p.port for p in group.processes if p.running()] if group else []

    async def close(self) -> None:
        """Stop every worker this runtime started."""
        async with self._lock:
            groups, self._groups = list(self._groups.values()), {}
            await asyncio.gather(*(self._stop(group, list(group.processes)) for group in groups))

    # --- internals --------------------------------------------------------------------------------

    def _launch_hash(self, target: WorkerTarget) -> str:
        """What a pod template hash is to a Deployment: any change replaces the workers."""
        return content_hash(
            {
                "revision": revision_hash(target.revision),
                "env": process_env(target, Path(PIPELINE_FILE), "", 0),
                "argv": list(self._argv_for(target)),
                "extra_env": self._extra_env,
            }
        )

    async def _converge(self, group: WorkerGroup) -> list[RuntimeAction]:
        actions: list[RuntimeAction] = []
        for process in [p for p in group.processes if not p.running()]:
            logger.warning(
                "Worker %s of ImagePipeline %s exited with code %s; starting a new one.",
                process.name,
                group.target.ref,
                process.popen.returncode,
            )
            process.log.close()
            group.processes.remove(process)
        current = [p for p in group.processes if p.revision == group.revision]
        stale = [p for p in group.processes if p.revision != group.revision]
        wanted = group.replicas
        for _ in range(max(0, wanted - len(current))):
            started = self._start(group)
            current.append(started)
            actions.append(RuntimeAction("Started", "Worker", started.name, f"pid {started.pid}"))
        doomed = stale + list(reversed(current[wanted:]))
        if doomed:
            await self._stop(group, doomed)
            actions += [RuntimeAction("Stopped", "Worker", p.name, f"pid {p.pid}") for p in doomed]
        return actions

    def _start(self, group: WorkerGroup) -> WorkerProcess:
        target = group.target
        group.serial += 1
        name = f"{target.names.workers}-{group.serial}"
        port = free_port(self._host)
        env = {
            **os.environ,
            **process_env(target, group.directory / PIPELINE_FILE, name, port),
            **self._extra_env,
        }
        group.directory.mkdir(parents=True, exist_ok=True)
        log = (group.directory / f"{name}.log").open("ab")
        popen = subprocess.Popen(  # the command is fixed by the runtime, not by the spec
            list(self._argv_for(target)),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=group.directory,
            start_new_session=True,
        )
        process = WorkerProcess(name=name, popen=popen, port=port, revision=group.revision, log=log)
        group.processes.append(process)
        logger.info(
            "Started worker %s (pid %d) of ImagePipeline %s in region %s.",
            name,
            popen.pid,
            target.ref,
            target.region,
        )
        return process

    async def _stop(self, group: WorkerGroup, processes: list[WorkerProcess]) -> None:
        grace = duration_seconds(group.target.spec.worker.drain_timeout) + DRAIN_MARGIN_SECONDS
        for process in processes:
            if process.running():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(process.popen.wait, max(0.0, deadline - time.monotonic()))
            if process.running():
                logger.warning("Worker %s (pid %d) ignored SIGTERM; killing it.", process.name, process.pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
                process.popen.wait()
            process.log.close()
            if process in group.processes:
                group.processes.remove(process)

    async def _observe(self, group: WorkerGroup) -> WorkerObservation:
        running = [p for p in group.processes if p.running()]
        timeout = aiohttp.ClientTimeout(total=READY_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            ready_flags = await asyncio.gather(*(self._ready(session, p) for p in running))
        ready = sum(1 for flag in ready_flags if flag)
        updated = [p for p in running if p.revision == group.revision]
        return WorkerObservation(
            exists=True,
            replicas=group.replicas,
            ready=ready,
            available=ready,
            updated=len(updated),
            rolled_out=len(updated) == group.replicas == len(running),
        )

    async def _ready(self, session: aiohttp.ClientSession, process: WorkerProcess) -> bool:
        url = f"http://{self._host}:{process.port}/readyz"
        try:
            async with session.get(url) as reply:
                return reply.status == 200
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False
