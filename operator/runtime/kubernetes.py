"""Workers as Kubernetes Deployments, with their ConfigMap, Service, PodDisruptionBudget, ServiceMonitor.

Observe, then decide, then write: every child is read, `drift.plan_child` decides (pure), and only
the planned writes are sent. An unchanged pipeline costs reads only. A child deleted by hand is
absent on the next pass and created again; a child edited by hand is patched back.

A ServiceMonitor is built only while the Prometheus Operator's CRD exists, a KEDA ScaledObject only
while KEDA's does and the pipeline chose `autoscaling.engine: keda` (each CRD checked once a minute).
A pipeline that goes back to the built-in engine loses its ScaledObject, so KEDA and the operator
never both write `spec.replicas`.

In a member cluster (`create_namespaces=True`) the pipeline's namespace may not exist: it is
created, labelled as PixelMesh's, and never deleted (other things may live in it by then). Known
namespaces are remembered, so a pass costs no extra read; a create refused with 404 forgets it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pixelmesh.api.messages import PipelineRef
from pixelmesh.api.resources import SecretKeyRef
from pixelmesh.operator import names
from pixelmesh.operator.builders.children import ChildOptions, build_children, wants_scaled_object
from pixelmesh.operator.builders.hashing import KubeObject
from pixelmesh.operator.clients import kube as k8s
from pixelmesh.operator.drift import ChildAction, plan_child, plan_scale
from pixelmesh.operator.runtime import Applied, PlacedWorkers, RuntimeAction, WorkerObservation
from pixelmesh.operator.target import WorkerTarget

logger = logging.getLogger(__name__)

CRD_CHECK_EVERY = 60.0
CHILD_KINDS = (
    k8s.CONFIG_MAP,
    k8s.SECRET,
    k8s.DEPLOYMENT,
    k8s.SERVICE,
    k8s.PDB,
    k8s.SERVICE_MONITOR,
    k8s.SCALED_OBJECT,
)
OPTIONAL_KINDS = {
    k8s.SERVICE_MONITOR.kind: names.SERVICE_MONITOR_CRD,
    k8s.SCALED_OBJECT.kind: names.SCALED_OBJECT_CRD,
}
"""Children whose kind exists only where another operator's CRD is installed."""

CredentialsLoader = Callable[[SecretKeyRef], Awaitable[bytes]]
NAMESPACE = k8s.Kind("v1", "Namespace", "namespaces", namespaced=False)


def observe_deployment(deployment: KubeObject | None) -> WorkerObservation:
    """The workers as a Deployment's spec and status tell them (pure)."""
    if deployment is None:
        return WorkerObservation()
    spec: dict[str, Any] = deployment.get("spec") or {}
    status: dict[str, Any] = deployment.get("status") or {}
    replicas = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas", 0))
    available = int(status.get("availableReplicas", 0))
    current = int(status.get("observedGeneration", 0)) >= int(deployment["metadata"].get("generation", 0))
    return WorkerObservation(
        exists=True,
        replicas=replicas,
        ready=int(status.get("readyReplicas", 0)),
        available=available,
        updated=updated,
        rolled_out=current and updated == replicas and int(status.get("replicas", 0)) == updated,
    )


@dataclass
class _CrdCache:
    present: bool = False
    checked_at: float | None = None


class KubernetesRuntime:
    """Writes a pipeline's children into one cluster."""

    def __init__(
        self,
        kube: k8s.KubeClient,
        *,
        credentials: CredentialsLoader | None = None,
        create_namespaces: bool = False,
    ) -> None:
        self._kube = kube
        self._credentials = credentials
        self._crds: dict[str, _CrdCache] = {}
        self._create_namespaces = create_namespaces
        self._namespaces: set[str] = set()
        """Namespaces known to exist (only tracked when this runtime creates them)."""

    async def _ensure_namespace(self, namespace: str) -> list[RuntimeAction]:
        if not self._create_namespaces or namespace in self._namespaces:
            return []
        actions = []
        if await self._kube.get(NAMESPACE, None, namespace) is None:
            body = {
                "apiVersion": NAMESPACE.api_version,
                "kind": NAMESPACE.kind,
                "metadata": {
                    "name": namespace,
                    "labels": {names.LABEL_MANAGED_BY: names.MANAGED_BY, names.LABEL_PART_OF: names.PART_OF},
                },
            }
            try:
                await self._kube.create(NAMESPACE, body)
                actions.append(RuntimeAction("Created", NAMESPACE.kind, namespace))
            except k8s.KubeError as error:
                if not error.conflict:  # created meanwhile by someone else: as good
                    raise
        self._namespaces.add(namespace)
        return actions

    async def _crd_available(self, crd: str) -> bool:
        cache = self._crds.setdefault(crd, _CrdCache())
        if cache.checked_at is None or time.monotonic() - cache.checked_at > CRD_CHECK_EVERY:
            cache.present = await self._kube.crd_exists(crd)
            cache.checked_at = time.monotonic()
        return cache.present

    async def _options(self, target: WorkerTarget) -> ChildOptions:
        credentials = None
        ref = target.placement.nats_credentials
        if ref is not None:
            if self._credentials is None:
                raise RuntimeError(f"region {target.region} names NATS credentials but none can be read")
            credentials = await self._credentials(ref)
        return ChildOptions(
            service_monitor=await self._crd_available(names.SERVICE_MONITOR_CRD),
            nats_credentials=credentials,
            scaled_object=await self._crd_available(names.SCALED_OBJECT_CRD),
        )

    async def apply(self, target: WorkerTarget, replicas: int) -> Applied:
        deployment: KubeObject | None = None
        options = await self._options(target)
        actions = await self._ensure_namespace(target.ref.namespace)
        for desired in build_children(target, options):
            kind = k8s.KINDS[desired["kind"]]
            name = desired["metadata"]["name"]
            observed = await self._kube.get(kind, target.ref.namespace, name)
            plan = plan_child(desired, observed)
            result = observed
            if plan.action is ChildAction.CREATE:
                body = desired
                if kind is k8s.DEPLOYMENT:
                    body = {**desired, "spec": {**desired["spec"], "replicas": replicas}}
                try:
                    result = await self._kube.create(kind, body)
                except k8s.KubeError as error:
                    if error.not_found:  # the namespace went away since it was checked
                        self._namespaces.discard(target.ref.namespace)
                    raise
                actions.append(RuntimeAction("Created", kind.kind, name))
            elif plan.action is ChildAction.PATCH:
                result = await self._kube.patch(kind, target.ref.namespace, name, plan.body)
                actions.append(RuntimeAction("Updated", kind.kind, name, plan.reason))
            if kind is k8s.DEPLOYMENT:
                deployment = result
        if options.scaled_object and not wants_scaled_object(target, options):
            actions += await self._remove_child(
                k8s.SCALED_OBJECT, target.ref, target.names.workers, "the built-in autoscaler took over"
            )
        for action in actions:
            logger.info(
                "%s for ImagePipeline %s in region %s", action.describe()[:-1], target.ref, target.region
            )
        return Applied(observe_deployment(deployment), actions)

    async def scale(self, target: WorkerTarget, replicas: int) -> RuntimeAction | None:
        name = target.names.workers
        deployment = await self._kube.get(k8s.DEPLOYMENT, target.ref.namespace, name)
        if deployment is None:
            return None
        plan = plan_scale(replicas, observe_deployment(deployment).replicas)
        if not plan.write:
            return None
        await self._kube.patch(k8s.DEPLOYMENT, target.ref.namespace, name, {"spec": {"replicas": replicas}})
        logger.info(
            "Scaled Deployment %s of ImagePipeline %s from %s to %d replicas.",
            name,
            target.ref,
            plan.current,
            replicas,
        )
        return RuntimeAction("Scaled", "Deployment", name, f"{plan.current} -> {replicas} replicas")

    async def observe(self, target: WorkerTarget) -> WorkerObservation:
        return observe_deployment(
            await self._kube.get(k8s.DEPLOYMENT, target.ref.namespace, target.names.workers)
        )

    def _ours(self, obj: KubeObject, ref: PipelineRef) -> bool:
        annotations = obj.get("metadata", {}).get("annotations") or {}
        return annotations.get(names.OWNER) == names.owner_value(ref.namespace, ref.name)

    async def placed(self, ref: PipelineRef) -> list[PlacedWorkers]:
        deployments = await self._kube.list(
            k8s.DEPLOYMENT, ref.namespace, label_selector=names.pipeline_selector(ref.name)
        )
        found = {
            PlacedWorkers(
                pool=d["metadata"]["labels"].get(names.LABEL_POOL, ""),
                region=d["metadata"]["labels"].get(names.LABEL_REGION, ""),
            )
            for d in deployments
            if self._ours(d, ref)
        }
        return sorted(found, key=lambda p: (p.region, p.pool))

    async def _remove_child(
        self, kind: k8s.Kind, ref: PipelineRef, name: str, why: str
    ) -> list[RuntimeAction]:
        observed = await self._kube.get(kind, ref.namespace, name)
        if observed is None or not self._ours(observed, ref):
            return []
        if not await self._kube.delete(kind, ref.namespace, name):
            return []
        return [RuntimeAction("Deleted", kind.kind, name, why)]

    async def remove(self, ref: PipelineRef, region: str) -> list[RuntimeAction]:
        child = names.child_names(ref.name, region)
        actions = []
        for kind in CHILD_KINDS:
            name = child.pipeline_config if kind is k8s.CONFIG_MAP else child.workers
            if kind is k8s.SECRET:
                name = child.nats_credentials
            crd = OPTIONAL_KINDS.get(kind.kind)
            if crd is not None and not await self._crd_available(crd):
                continue
            actions += await self._remove_child(kind, ref, name, f"region {region} left the pipeline")
        return actions
