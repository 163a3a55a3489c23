"""The runtimes of a hub operator: its own cluster, and every member cluster a RegionPool names.

The reconciler asks for a region's runtime synchronously, but reaching a member cluster means
reading its kubeconfig Secret. `for_region` therefore hands out a `MemberRuntime` that connects
on each call (`MemberClusters` caches the client and re-reads the Secret only now and then), so a
missing or broken Secret surfaces as that region's runtime failure, with the Secret named, and
heals on the next pass after it is fixed.

`all()` is the own runtime and every member reached so far: regions removed from a pipeline are
cleaned up in their cluster. A member never reached since the operator started (its pools all
gone before any pass) is not searched.
"""

from __future__ import annotations

from collections.abc import Sequence

from pixelmesh.api.messages import PipelineRef
from pixelmesh.api.resources import ClusterRef
from pixelmesh.operator.clients.members import MemberClusters, SecretKey, secret_key
from pixelmesh.operator.runtime import Applied, PlacedWorkers, RuntimeAction, WorkerObservation, WorkerRuntime
from pixelmesh.operator.runtime.kubernetes import KubernetesRuntime
from pixelmesh.operator.target import RegionPlacement, WorkerTarget


class MemberRuntime:
    """The workers in one member cluster, reached through its kubeconfig Secret on each call."""

    def __init__(self, members: MemberClusters, cluster: ClusterRef) -> None:
        self._members = members
        self.cluster = cluster

    async def _runtime(self) -> KubernetesRuntime:
        return (await self._members.connect(self.cluster)).runtime

    async def apply(self, target: WorkerTarget, replicas: int) -> Applied:
        return await (await self._runtime()).apply(target, replicas)

    async def scale(self, target: WorkerTarget, replicas: int) -> RuntimeAction | None:
        return await (await self._runtime()).scale(target, replicas)

    async def observe(self, target: WorkerTarget) -> WorkerObservation:
        return await (await self._runtime()).observe(target)

    async def placed(self, ref: PipelineRef) -> list[PlacedWorkers]:
        return await (await self._runtime()).placed(ref)

    async def remove(self, ref: PipelineRef, region: str) -> list[RuntimeAction]:
        return await (await self._runtime()).remove(ref, region)


class MemberRuntimes:
    """A `RuntimeProvider`: the own cluster's runtime, or the member's a placement names."""

    def __init__(self, own: WorkerRuntime, members: MemberClusters) -> None:
        self.own = own
        self.members = members
        self._runtimes: dict[SecretKey, MemberRuntime] = {}

    def for_region(self, placement: RegionPlacement) -> WorkerRuntime:
        if placement.cluster is None:
            return self.own
        key = secret_key(placement.cluster.kubeconfig_secret)
        runtime = self._runtimes.get(key)
        if runtime is None:
            runtime = self._runtimes[key] = MemberRuntime(self.members, placement.cluster)
        return runtime

    def all(self) -> Sequence[WorkerRuntime]:
        return (self.own, *(member.runtime for member in self.members.built()))
