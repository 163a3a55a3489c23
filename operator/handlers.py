"""The kopf handlers: thin shells that turn a watch event into one call of the reconciler core.

Registered into a fresh `kopf.OperatorRegistry` per run, closing over that run's context, so
several operators can start and stop in one process (tests) without handlers piling up.

- ImagePipeline: create, update and resume reconcile at once; a timer re-converges every
  `resyncSeconds` (level-triggered: a missed event or a hand edit heals); delete cleans up what
  owner references cannot. A per-object lock keeps the timer and the change handlers apart.
- RegionPool: a daemon per pool probes its NATS every `failover.probeInterval`.
- kopf keeps its own bookkeeping in annotations under `pixelmesh.io/`, so `status` holds only
  the API's schema; kopf's log-to-Event bridge posts only errors (our Events say what happened).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf
import kubernetes.client
from pydantic import ValidationError

from pixelmesh.api.resources import RegionPoolSpec, duration_seconds
from pixelmesh.operator import names
from pixelmesh.operator.clients.kube import POOL
from pixelmesh.operator.context import OperatorContext
from pixelmesh.operator.reconcile import EventNote, PipelineObject

logger = logging.getLogger(__name__)

POOL_INDEX = "region_pools"
"""The kopf index of RegionPool specs by name; kopf passes it to handlers under this keyword."""


def connection_info(configuration: kubernetes.client.Configuration) -> kopf.ConnectionInfo:
    """kopf's credentials from the same configuration the operator's own client uses."""
    header = configuration.get_api_key_with_prefix("BearerToken") or ""
    parts = header.split(" ", 1)
    scheme, token = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0] or None)
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        scheme=scheme,
        token=token,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )


def pools_from_index(index: kopf.Index[str, dict[str, Any]]) -> dict[str, RegionPoolSpec]:
    """The RegionPools that exist and parse, by name."""
    pools: dict[str, RegionPoolSpec] = {}
    for name, store in index.items():
        for spec in store:
            try:
                pools[name] = RegionPoolSpec.model_validate(spec)
            except ValidationError:
                logger.warning("RegionPool %s has an invalid spec and is ignored.", name)
    return pools


def pipeline_object(body: kopf.Body) -> PipelineObject:
    """The ImagePipeline as the reconciler takes it."""
    return PipelineObject(
        namespace=body.metadata.namespace or "",
        name=body.metadata.name or "",
        generation=int(body.metadata.get("generation", 1)),
        spec=dict(body.spec),
        status=dict(body.status),
        uid=body.metadata.uid or "",
    )


def post_events(body: kopf.Body, events: tuple[EventNote, ...] | list[EventNote]) -> None:
    for note in events:
        kopf.event(body, type=note.type, reason=note.reason, message=note.message)


def build_registry(context: OperatorContext) -> kopf.OperatorRegistry:
    """A registry with every handler of one operator run."""
    registry = kopf.OperatorRegistry()
    group, version = names.GROUP, names.VERSION

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.finalizer = names.FINALIZER
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
            prefix=names.KOPF_PREFIX, v1=False
        )
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=names.KOPF_PREFIX, key=names.KOPF_DIFFBASE.split("/", 1)[1], v1=False
        )
        settings.posting.level = logging.ERROR
        settings.watching.server_timeout = 300
        settings.networking.request_timeout = 60

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(context.configuration)

    @kopf.index(group, version, names.POOL_PLURAL, id=POOL_INDEX, registry=registry)
    def region_pools(name: str, spec: kopf.Spec, **_: Any) -> dict[str, dict[str, Any]]:
        return {name: dict(spec)}

    async def reconcile(
        body: kopf.Body, patch: kopf.Patch, region_pools: kopf.Index[str, dict[str, Any]]
    ) -> None:
        pipeline = pipeline_object(body)
        async with context.lock(pipeline.uid):
            outcome = await context.reconciler.reconcile_pipeline(pipeline, pools_from_index(region_pools))
        if outcome.patch:
            patch.status.update(outcome.patch)
        post_events(body, outcome.events)

    @kopf.on.resume(group, version, names.PIPELINE_PLURAL, id="pipeline", registry=registry)
    @kopf.on.create(group, version, names.PIPELINE_PLURAL, id="pipeline", registry=registry)
    @kopf.on.update(group, version, names.PIPELINE_PLURAL, id="pipeline", registry=registry)
    async def pipeline_changed(body: kopf.Body, patch: kopf.Patch, **kwargs: Any) -> None:
        await reconcile(body, patch, kwargs[POOL_INDEX])

    @kopf.timer(
        group,
        version,
        names.PIPELINE_PLURAL,
        interval=context.settings.resync_seconds,
        initial_delay=context.settings.resync_seconds,
        id="resync",
        registry=registry,
    )
    async def pipeline_resync(body: kopf.Body, patch: kopf.Patch, **kwargs: Any) -> None:
        await reconcile(body, patch, kwargs[POOL_INDEX])

    @kopf.on.delete(group, version, names.PIPELINE_PLURAL, id="cleanup", registry=registry)
    async def pipeline_deleted(body: kopf.Body, **kwargs: Any) -> None:
        region_pools: kopf.Index[str, dict[str, Any]] = kwargs[POOL_INDEX]
        pipeline = pipeline_object(body)
        async with context.lock(pipeline.uid):
            events = await context.reconciler.delete_pipeline(pipeline, pools_from_index(region_pools))
        context.locks.pop(pipeline.uid, None)
        post_events(body, events)

    @kopf.daemon(group, version, names.POOL_PLURAL, id="probe", registry=registry, cancellation_timeout=5.0)
    async def pool_prober(name: str, body: kopf.Body, stopped: kopf.DaemonStopped, **kwargs: Any) -> None:
        while not stopped:
            interval = await probe_pool(name, body, kwargs[POOL_INDEX])
            await stopped.wait(interval)

    async def probe_pool(name: str, body: kopf.Body, region_pools: kopf.Index[str, dict[str, Any]]) -> float:
        spec: Mapping[str, Any] = dict(body.spec)
        try:
            interval = duration_seconds(RegionPoolSpec.model_validate(spec).failover.probe_interval)
        except ValidationError:
            logger.warning("RegionPool %s has an invalid spec; it is not probed.", name)
            return context.settings.resync_seconds
        outcome = await context.reconciler.probe_pool(
            name,
            int(body.metadata.get("generation", 1)),
            spec,
            dict(body.status),
            pools_from_index(region_pools),
        )
        if outcome.patch:
            await context.kube.patch(POOL, None, name, {"status": outcome.patch}, subresource="status")
        post_events(body, outcome.events)
        return max(interval, 0.5)

    return registry
