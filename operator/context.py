"""Everything one running operator holds: settings, clients, the reconciler, the autoscaler, locks.

Built once per `run` (tests run several operators in one process, one after another), handed to
the kopf handlers by closure, closed when the operator stops. The reconciler and the autoscaler
share the runtimes and the NATS connections; the autoscaler is the reconciler's replica policy.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field

import kubernetes.client

from pixelmesh.api.resources import SecretKeyRef
from pixelmesh.operator.autoscaler import Autoscaler
from pixelmesh.operator.clients.kube import SECRET, KubeClient, load_configuration
from pixelmesh.operator.clients.nats import NatsJetStream, RegionConnections
from pixelmesh.operator.clients.pipeline_status import KubeScalingReporter
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
    autoscaler: Autoscaler
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
    runtimes = SingleRuntime(KubernetesRuntime(kube, credentials=read_secret_key))
    jetstream = NatsJetStream(connections)
    locks: dict[str, asyncio.Lock] = {}

    def lock_for(key: str) -> asyncio.Lock:
        return locks.setdefault(key, asyncio.Lock())

    autoscaler = Autoscaler(
        runtimes,
        jetstream,
        KubeScalingReporter(kube, lock_for),
        interval=settings.autoscaler_interval_seconds,
    )
    reconciler = Reconciler(
        runtimes=runtimes,
        jetstream=jetstream,
        default_region=DefaultRegion(region=settings.region, nats_urls=settings.nats_urls),
        worker_defaults=WorkerDefaults(
            image=settings.worker_image,
            image_pull_policy=settings.worker_image_pull_policy or None,
            log_format=settings.worker_log_format,
        ),
        replicas=autoscaler,
    )
    return OperatorContext(settings, configuration, kube, connections, reconciler, autoscaler, locks)
