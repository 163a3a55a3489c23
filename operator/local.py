"""The operator without a cluster: the reconciler core driving worker processes (`pixelmesh up`).

The local stack reads the same ImagePipeline and RegionPool YAML a cluster takes, keeps them and
their status in memory, and runs the same `Reconciler` with the `ProcessRuntime`:

    plane = LocalControlPlane(data_dir, nats_urls=("nats://127.0.0.1:4222",))
    plane.load([Path("examples/imagepipeline-thumbnails.yaml")])
    await plane.reconcile_once()          # streams, buckets, worker processes, status
    plane.status(PipelineRef(namespace="default", name="thumbnails")).phase
    await plane.run(stop)                 # reconcile every `interval` seconds until `stop` is set,
                                          # and autoscale meanwhile
    await plane.close()                   # stop the workers, close NATS connections

The built-in autoscaler is the reconciler's replica policy here too (`plane.autoscaler`): `run`
runs its loop beside the passes, `plane.autoscaler.tick()` takes one round of decisions, and its
decisions land in the in-memory status (`desiredReplicas`, `scalingReason`) and in the log.

A pipeline's `metadata.generation` is counted here as the API server would: it starts at 1 and
grows by one whenever a (re)loaded spec differs from the last one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ValidationError

from pixelmesh.api.messages import PipelineRef
from pixelmesh.api.resources import (
    ImagePipeline,
    ImagePipelineStatus,
    RegionPool,
    RegionPoolSpec,
    RegionPoolStatus,
)
from pixelmesh.operator.autoscaler import Autoscaler, ScalingChange
from pixelmesh.operator.autoscaling.policy import DEFAULT_INTERVAL
from pixelmesh.operator.clients.nats import NatsJetStream, RegionConnections
from pixelmesh.operator.placement import DefaultRegion
from pixelmesh.operator.reconcile import PipelineObject, PipelineOutcome, Reconciler, SingleRuntime
from pixelmesh.operator.runtime.process import ArgvFor, ProcessRuntime, default_worker_argv
from pixelmesh.operator.status import parse_pipeline_status, record_scaling
from pixelmesh.operator.target import WorkerDefaults, WorkerTarget

logger = logging.getLogger(__name__)


class ManifestError(ValueError):
    """A YAML file holds something that is not a valid ImagePipeline or RegionPool."""


def load_manifests(paths: Iterable[Path]) -> tuple[list[ImagePipeline], list[RegionPool]]:
    """Every ImagePipeline and RegionPool in the files (multi-document YAML is fine)."""
    pipelines: list[ImagePipeline] = []
    pools: list[RegionPool] = []
    for path in paths:
        for document in yaml.safe_load_all(path.read_text()):
            if not document:
                continue
            kind = document.get("kind") if isinstance(document, dict) else None
            try:
                if kind == "ImagePipeline":
                    pipelines.append(ImagePipeline.model_validate(document))
                elif kind == "RegionPool":
                    pools.append(RegionPool.model_validate(document))
                else:
                    raise ManifestError(f"{path}: expected an ImagePipeline or a RegionPool, got {kind!r}")
            except ValidationError as error:
                raise ManifestError(f"{path}: {error}") from error
    return pipelines, pools


_Key = TypeVar("_Key")


@dataclass
class _Stored:
    """An object as the API server would keep it: spec, generation, status."""

    spec: dict[str, Any]
    generation: int
    status: dict[str, Any] = field(default_factory=dict)


def _store(table: dict[_Key, _Stored], key: _Key, spec: dict[str, Any]) -> None:
    """Add or replace an object's spec; the generation grows only when the spec changed."""
    stored = table.get(key)
    if stored is None:
        table[key] = _Stored(spec=spec, generation=1)
    elif stored.spec != spec:
        stored.spec, stored.generation = spec, stored.generation + 1


class LocalControlPlane:
    """In-memory ImagePipelines and RegionPools, reconciled into local worker processes."""

    def __init__(
        self,
        data_dir: Path,
        *,
        nats_urls: Sequence[str] = ("nats://127.0.0.1:4222",),
        region: str = "local",
        worker_argv: ArgvFor = default_worker_argv,
        worker_env: Mapping[str, str] | None = None,
        autoscaler_interval: float = DEFAULT_INTERVAL,
    ) -> None:
        self.runtime = ProcessRuntime(data_dir, argv_for=worker_argv, extra_env=worker_env)
        self._connections = RegionConnections(name="pixelmesh-local")
        runtimes = SingleRuntime(self.runtime)
        jetstream = NatsJetStream(self._connections)
        # No KEDA on a laptop: pipelines written for `engine: keda` are scaled by the built-in engine.
        self.autoscaler = Autoscaler(runtimes, jetstream, self, interval=autoscaler_interval, keda=False)
        self.reconciler = Reconciler(
            runtimes=runtimes,
            jetstream=jetstream,
            default_region=DefaultRegion(region=region, nats_urls=tuple(nats_urls)),
            worker_defaults=WorkerDefaults(log_format="text"),
            replicas=self.autoscaler,
        )
        self._pipelines: dict[PipelineRef, _Stored] = {}
        self._pools: dict[str, _Stored] = {}

    # --- the objects ---------------------------------------------------------------------------------

    def load(self, paths: Iterable[Path]) -> None:
        """Add or replace the ImagePipelines and RegionPools in these YAML files."""
        pipelines, pools = load_manifests(paths)
        for pool in pools:
            self.apply_pool(pool)
        for pipeline in pipelines:
            self.apply_pipeline(pipeline)

    def apply_pipeline(self, pipeline: ImagePipeline) -> None:
        ref = PipelineRef(namespace=pipeline.metadata.namespace, name=pipeline.metadata.name)
        _store(self._pipelines, ref, pipeline.spec.to_wire())

    def apply_pool(self, pool: RegionPool) -> None:
        _store(self._pools, pool.metadata.name, pool.spec.to_wire())

    async def delete_pipeline(self, ref: PipelineRef) -> None:
        """Stop the pipeline's workers (and delete its streams under `deletionPolicy: Delete`)."""
        stored = self._pipelines.pop(ref, None)
        if stored is None:
            return
        obj = PipelineObject(ref.namespace, ref.name, stored.generation, stored.spec, stored.status)
        for note in await self.reconciler.delete_pipeline(obj, self._pool_specs()):
            logger.info("ImagePipeline %s: %s", ref, note.message)

    def delete_pool(self, name: str) -> None:
        self._pools.pop(name, None)

    def pipelines(self) -> list[PipelineRef]:
        return sorted(self._pipelines, key=str)

    def status(self, ref: PipelineRef) -> ImagePipelineStatus:
        return ImagePipelineStatus.model_validate(self._pipelines[ref].status)

    def pool_status(self, name: str) -> RegionPoolStatus:
        return RegionPoolStatus.model_validate(self._pools[name].status)

    # --- reconciling ---------------------------------------------------------------------------------

    def _pool_specs(self) -> dict[str, RegionPoolSpec]:
        return {name: RegionPoolSpec.model_validate(stored.spec) for name, stored in self._pools.items()}

    async def reconcile_once(self) -> dict[PipelineRef, PipelineOutcome]:
        """Probe every pool, then reconcile every pipeline once; the outcomes by pipeline."""
        specs = self._pool_specs()
        for name, pool in self._pools.items():
            pool_outcome = await self.reconciler.probe_pool(
                name, pool.generation, pool.spec, pool.status, specs
            )
            pool.status = pool_outcome.status.to_wire()
            for note in pool_outcome.events:
                logger.info("RegionPool %s: %s", name, note.message)
        pools = self._pool_specs()
        outcomes: dict[PipelineRef, PipelineOutcome] = {}
        for ref, stored in list(self._pipelines.items()):
            obj = PipelineObject(ref.namespace, ref.name, stored.generation, stored.spec, stored.status)
            outcome = await self.reconciler.reconcile_pipeline(obj, pools)
            stored.status = outcome.status.to_wire()
            for note in outcome.events:
                log = logger.warning if note.type == "Warning" else logger.info
                log("ImagePipeline %s: %s", ref, note.message)
            outcomes[ref] = outcome
        return outcomes

    async def run(self, stop: asyncio.Event, interval: float = 2.0) -> None:
        """Reconcile every `interval` seconds, and autoscale meanwhile, until `stop` is set."""
        autoscaling = asyncio.get_running_loop().create_task(self.autoscaler.run())
        try:
            while not stop.is_set():
                try:
                    await self.reconcile_once()
                except Exception:  # the loop outlives one bad pass, as the operator's timer does
                    logger.exception("A reconcile pass of the local control plane failed.")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=interval)
        finally:
            autoscaling.cancel()
            await asyncio.gather(autoscaling, return_exceptions=True)

    async def report(self, target: WorkerTarget, change: ScalingChange) -> bool:
        """The autoscaler's reporter: its decision in the in-memory status, its warnings in the log
        (each scale is logged already, by the autoscaler and the runtime)."""
        for note in change.events:
            if note.type == "Warning":
                logger.warning("ImagePipeline %s: %s", target.ref, note.message)
        stored = self._pipelines.get(target.ref)
        if stored is None:
            return True
        status = record_scaling(
            parse_pipeline_status(stored.status), target.region, change.desired, change.reason
        )
        if status is None:
            return False
        stored.status = status.to_wire()
        return True

    async def close(self) -> None:
        """Stop every worker process and close the NATS connections."""
        await self.runtime.close()
        await self._connections.close()
