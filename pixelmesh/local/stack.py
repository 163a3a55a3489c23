"""The whole platform on one machine: NATS, the reconciler with worker processes, and the gateway.

`LocalStack` is the embedded default of the design: the same ImagePipeline/RegionPool YAML a cluster
takes, the operator's `LocalControlPlane` (its reconciler core with the process runtime instead of
Deployments), the same worker and gateway code. What the stack adds is the shell around them: it
re-reads the files before every pass (an edited file rolls its workers, a removed one stops them, a
broken one is reported and skipped) and runs a pass every few seconds (level-triggered, so a crashed
worker heals on the next one), it runs the operator's built-in autoscaler beside the passes (the
worker processes follow the backlog, to zero and back, unless `workers` fixes their number), and it
feeds the gateway's catalog from the pipelines' status.

Everything runs on the one embedded nats-server: a RegionPool's NATS URLs (and kubeconfig) are
replaced by the local server, so a file written for a cluster runs unchanged on a laptop. Its
JetStream store lives in the data directory: stopping and starting again keeps accepted jobs, which
the workers then finish.

Caveat: pipeline generations are counted in memory by the control plane, from 1 at every start. A
spec edited between two runs therefore reuses generation 1 in its output keys, and an output
rendered before the edit can be served for a signed URL after it.

Stopping goes from the edge inwards: the gateway stops accepting, the workers drain and stop (each
by PID), the reconciler's connections close, and NATS stops last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

from pixelmesh.api.messages import PipelineRef
from pixelmesh.api.resources import ImagePipeline, RegionPool
from pixelmesh.cancellation import resume_cancellation
from pixelmesh.gateway.app import RunningGateway, serve
from pixelmesh.gateway.catalog import YAML_SUFFIXES, CatalogEntry, MemoryCatalog
from pixelmesh.gateway.config import GatewayConfig
from pixelmesh.local.state import StackSecrets, StackState
from pixelmesh.natsserver import NatsServer, NatsServerConfig
from pixelmesh.operator.local import LocalControlPlane, ManifestError, load_manifests
from pixelmesh.operator.runtime import WorkerObservation
from pixelmesh.operator.scaling import ScaleDecision
from pixelmesh.operator.target import WorkerTarget

logger = logging.getLogger(__name__)

T = TypeVar("T")
LOCAL_REGION = "local"


@dataclass(frozen=True, slots=True)
class StackOptions:
    config_dir: Path
    data_dir: Path
    host: str = "127.0.0.1"
    gateway_port: int = 8080
    """0 picks a free port."""
    workers: int | None = None
    """Worker processes per pipeline and region; None: the built-in autoscaler decides, as in a cluster."""
    resync_seconds: float = 5.0


@dataclass(frozen=True, slots=True)
class FixedReplicas:
    """A fixed number of workers per pipeline and region (`pixelmesh up --workers N`)."""

    replicas: int

    def initial(self, target: WorkerTarget) -> int:
        return self.replicas

    def desired(
        self, target: WorkerTarget, observed: WorkerObservation, backlog: int | None
    ) -> ScaleDecision | None:
        return ScaleDecision(self.replicas, "fixed")

    def forget(self, ref: PipelineRef, region: str | None = None) -> None:
        """Nothing is kept per pipeline."""


def manifest_files(config: Path) -> list[Path]:
    """The YAML files directly in `config` (or `config` itself when it is a file), sorted."""
    if config.is_file():
        return [config]
    return sorted(p for p in config.iterdir() if p.suffix in YAML_SUFFIXES and p.is_file())


@dataclass
class Manifests:
    pipelines: list[ImagePipeline] = field(default_factory=list)
    pools: list[RegionPool] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def read_manifests(config: Path) -> Manifests:
    """Every ImagePipeline and RegionPool under `config`; a file that does not load is reported, not fatal."""
    found = Manifests()
    for path in manifest_files(config):
        try:
            pipelines, pools = load_manifests([path])
        except (ManifestError, OSError, ValueError) as error:
            found.problems.append(f"{path} was skipped: {error}")
            continue
        found.pipelines.extend(pipelines)
        found.pools.extend(pools)
    return found


def local_pool(pool: RegionPool, nats_url: str) -> RegionPool:
    """The pool as it runs here: on the local NATS, in this machine's "cluster", one stream replica."""
    nats = pool.spec.nats.model_copy(update={"urls": [nats_url], "credentials_secret": None, "replicas": 1})
    spec = pool.spec.model_copy(update={"nats": nats, "cluster": None})
    return pool.model_copy(update={"spec": spec})


@dataclass
class PassReport:
    """What one reconcile pass found, for the console."""

    pipelines: dict[PipelineRef, str] = field(default_factory=dict)
    """Phase by pipeline."""
    problems: list[str] = field(default_factory=list)


class LocalStack:
    """`async with LocalStack(options) as stack:` runs everything until the block exits."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.data_dir = options.data_dir
        self.catalog = MemoryCatalog()
        self.secrets: StackSecrets | None = None
        self.nats: NatsServer | None = None
        self.plane: LocalControlPlane | None = None
        self.gateway: RunningGateway | None = None
        self._pools: list[RegionPool] = []
        self._reported: set[str] = set()
        self._exit = contextlib.AsyncExitStack()
        self._resync: asyncio.Task[None] | None = None
        self._autoscaling: asyncio.Task[None] | None = None
        self._pass_lock = asyncio.Lock()
        self.last_pass = PassReport()

    # --- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def nats_url(self) -> str:
        return self._require(self.nats).url

    @staticmethod
    def _require(part: T | None) -> T:
        if part is None:
            raise RuntimeError("the local stack has not been started")
        return part

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.secrets = StackSecrets.load_or_create(self.data_dir)

        nats_dir = self.data_dir / "nats"
        self.nats = NatsServer(config=NatsServerConfig(store_dir=nats_dir / "jetstream"), work_dir=nats_dir)
        await self.nats.astart()
        self._exit.push_async_callback(self._stop_nats)
        logger.info("The embedded nats-server listens on %s (pid %s).", self.nats.url, self.nats.pid)

        self.plane = LocalControlPlane(
            self.data_dir / "workers", nats_urls=(self.nats.url,), region=LOCAL_REGION
        )
        if self.options.workers is not None:
            self.plane.reconciler.replicas = FixedReplicas(self.options.workers)
        self._exit.push_async_callback(self.plane.close)
        await self.reconcile()
        if self.options.workers is None:
            self._autoscaling = asyncio.get_running_loop().create_task(self.plane.autoscaler.run())

        self.gateway = await self._exit.enter_async_context(
            serve(self._gateway_config(), catalog=self.catalog)
        )
        StackState(
            gateway_url=self.gateway.url,
            api_key=self.secrets.api_key,
            signing_key=self.secrets.signing_key,
            nats_url=self.nats.url,
            data_dir=str(self.data_dir),
            pid=os.getpid(),
        ).save(self.data_dir)
        self._exit.callback(StackState.remove, self.data_dir)
        self._resync = asyncio.get_running_loop().create_task(self._resync_forever())

    async def stop(self) -> None:
        for task in (self._resync, self._autoscaling):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._resync = self._autoscaling = None
        await self._exit.aclose()

    async def _stop_nats(self) -> None:
        if self.nats is not None:
            await self.nats.astop()
            logger.info("The embedded nats-server has stopped.")

    def regions(self) -> list[str]:
        """Every region the stack serves: the pools' and the default one, all on the local NATS."""
        return list(dict.fromkeys([*(pool.spec.region for pool in self._pools), LOCAL_REGION]))

    def _gateway_config(self) -> GatewayConfig:
        secrets = self._require(self.secrets)
        regions = self.regions()
        return GatewayConfig(
            host=self.options.host,
            port=self.options.gateway_port,
            regions=dict.fromkeys(regions, (self.nats_url,)),
            # The operator's own region: pipelines that name no pool run there, and it holds the
            # routing table that sends the others to their pools.
            home_region=LOCAL_REGION,
            pipelines=(),
            api_keys=(secrets.api_key,),
            signing_keys=(secrets.signing_key,),
        )

    # --- reconciling ----------------------------------------------------------------------------

    async def _resync_forever(self) -> None:
        while True:
            await asyncio.sleep(self.options.resync_seconds)
            try:
                await self.reconcile()
            except Exception:
                logger.exception("A reconcile pass of the local stack failed; the next one retries.")
            resume_cancellation()

    async def reconcile(self) -> PassReport:
        """Re-read the config directory and run one pass over every pipeline."""
        async with self._pass_lock:
            return await self._reconcile()

    async def _reconcile(self) -> PassReport:
        plane = self._require(self.plane)
        report = PassReport()
        manifests = read_manifests(self.options.config_dir)
        report.problems.extend(manifests.problems)
        self._pools = [local_pool(pool, self.nats_url) for pool in manifests.pools]
        for pool in self._pools:
            plane.apply_pool(pool)
        for pipeline in manifests.pipelines:
            plane.apply_pipeline(pipeline)
        present = {
            PipelineRef(namespace=p.metadata.namespace, name=p.metadata.name) for p in manifests.pipelines
        }
        for ref in plane.pipelines():
            if ref not in present:
                logger.info("ImagePipeline %s is gone from the config directory; removing it.", ref)
                await plane.delete_pipeline(ref)

        outcomes = await plane.reconcile_once()
        entries: list[CatalogEntry] = []
        for pipeline in manifests.pipelines:
            ref = PipelineRef(namespace=pipeline.metadata.namespace, name=pipeline.metadata.name)
            outcome = outcomes.get(ref)
            if outcome is None:
                continue
            report.pipelines[ref] = outcome.status.phase.value
            report.problems.extend(
                f"ImagePipeline {ref}: {event.message}" for event in outcome.events if event.type == "Warning"
            )
            entries.append(
                CatalogEntry(
                    ref=ref,
                    spec=pipeline.spec.pipeline(),
                    generation=outcome.status.pipeline_generation or outcome.status.observed_generation or 1,
                )
            )
        self.catalog.replace(entries)
        for problem in report.problems:
            if problem not in self._reported:
                logger.warning("%s", problem)
        self._reported = set(report.problems)
        self.last_pass = report
        return report

    async def wait_ready(self, seconds: float, *, poll: float = 0.5) -> bool:
        """Reconcile until every pipeline has a ready worker in each of its regions, for up to `seconds`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            await self.reconcile()
            if self.ready():
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(poll)

    def ready(self) -> bool:
        plane = self._require(self.plane)
        if not self.last_pass.pipelines:
            return False
        for ref in self.last_pass.pipelines:
            regions = plane.status(ref).regions
            if not regions or any(r.desired_replicas > 0 and r.ready_replicas < 1 for r in regions):
                return False
        return True

    # --- for the console ------------------------------------------------------------------------

    def worker_metrics(self) -> Mapping[str, list[str]]:
        """Metrics URLs of the running workers, by pipeline and region."""
        plane = self._require(self.plane)
        found: dict[str, list[str]] = {}
        for ref in self.last_pass.pipelines:
            for region in self.regions():
                ports = plane.runtime.worker_ports(ref, region)
                if ports:
                    found[f"{ref} ({region})"] = [f"http://{self.options.host}:{p}/metrics" for p in ports]
        return found
