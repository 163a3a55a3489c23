"""Everything one running operator holds: settings, clients, the reconciler, per-object locks.

Built once per `run` (tests run several operators in one process, one after another), handed to
the kopf handlers by closure, closed when the operator stops.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field

import kubernetes.client

from pixelmesh.api.resources import SecretKeyRef
from pixelmesh.operator.clients.kube import SECRET, KubeClient, load_configuration
from pixelmesh.operator.clients.nats import NatsJetStream, RegionConnections
from pixelmesh.operator.placement import DefaultRegion
from pixelmesh.operator.reconcile import Reconciler, SingleRuntime
from pixelmesh.operator.runtime.kubernetes import KubernetesRuntime
from pixelmesh.operator.settings import OperatorSettings
from pixelmesh.operator.target import WorkerDefaults


class SecretKeyMissingError(LookupError):
    """A Secret named by a RegionPool does not exist or lacks the key."""


@dataclass
class OperatorContext:
    settings: OperatorSettings
    configuration: kubernetes.client.Configuration
    kube: KubeClient
    connections: RegionConnections
    reconciler: Reconciler
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def lock(self, key: str) -> asyncio.Lock:
        """One lock per object: the resync timer and change handlers never interleave on it."""
        return self.locks.setdefault(key, asyncio.Lock())

    async def close(self) -> None:
        await self.connections.close()
        self.kube.close()


def build_context(settings: OperatorSettings) -> OperatorContext:
    configuration = load_configuration(settings.kubeconfig)
    kube = KubeClient(configuration)

    async def read_secret_key(ref: SecretKeyRef) -> bytes:
        secret = await kube.get(SECRET, ref.namespace, ref.name)
        data = (secret or {}).get("data") or {}
        if ref.key not in data:
            raise SecretKeyMissingError(f"Secret {ref.namespace}/{ref.name} has no key {ref.key}")
        return base64.b64decode(data[ref.key])

    connections = RegionConnections(credentials=read_secret_key)
    reconciler = Reconciler(
        runtimes=SingleRuntime(KubernetesRuntime(kube, credentials=read_secret_key)),
        jetstream=NatsJetStream(connections),
        default_region=DefaultRegion(region=settings.region, nats_urls=settings.nats_urls),
        worker_defaults=WorkerDefaults(
            image=settings.worker_image,
            image_pull_policy=settings.worker_image_pull_policy or None,
            log_format=settings.worker_log_format,
        ),
    )
    return OperatorContext(settings, configuration, kube, connections, reconciler)
