"""Everything one running operator holds: settings, clients, the reconciler, the autoscaler, locks.

Built once per `run` (tests run several operators in one process, one after another), handed to
the kopf handlers by closure, closed when the operator stops. The reconciler and the autoscaler
share the runtimes (the own cluster's and every member cluster's) and the NATS connections; the
autoscaler is the reconciler's replica policy.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import kubernetes.client

from pixelmesh.operator.autoscaler import Autoscaler
from pixelmesh.operator.clients.kube import KubeClient, load_configuration
from pixelmesh.operator.clients.members import MemberClusters, SecretKeyMissingError, secret_key_reader
from pixelmesh.operator.clients.nats import NatsJetStream, RegionConnections
from pixelmesh.operator.clients.pipeline_status import KubeScalingReporter
from pixelmesh.operator.placement import DefaultRegion
from pixelmesh.operator.reconcile import Reconciler
from pixelmesh.operator.runtime.kubernetes import KubernetesRuntime
from pixelmesh.operator.runtime.members import MemberRuntimes
from pixelmesh.operator.settings import OperatorSettings
from pixelmesh.operator.target import GeoPlacement, WorkerDefaults

__all__ = ["OperatorContext", "SecretKeyMissingError", "build_context"]


@dataclass
class OperatorContext:
    settings: OperatorSettings
    configuration: kubernetes.client.Configuration
    kube: KubeClient
    connections: RegionConnections
    reconciler: Reconciler
    autoscaler: Autoscaler
    members: MemberClusters
    """The member clusters' clients; also answers whether a region's API server is reachable."""
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def lock(self, key: str) -> asyncio.Lock:
        """One lock per object: the resync timer and change handlers never interleave on it."""
        return self.locks.setdefault(key, asyncio.Lock())

    async def close(self) -> None:
        await self.connections.close()
        self.members.close()
        self.kube.close()


def build_context(settings: OperatorSettings) -> OperatorContext:
    configuration = load_configuration(settings.kubeconfig)
    kube = KubeClient(configuration)
    read_secret_key = secret_key_reader(kube)
    connections = RegionConnections(credentials=read_secret_key)
    members = MemberClusters(kube, read_secret_key)
    runtimes = MemberRuntimes(KubernetesRuntime(kube, credentials=read_secret_key), members)
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
        geo=GeoPlacement(cluster=settings.geo_cluster, replicas=settings.geo_replicas),
        clusters=members,
    )
    return OperatorContext(settings, configuration, kube, connections, reconciler, autoscaler, members, locks)
