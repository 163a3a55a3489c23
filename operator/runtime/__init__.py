"""The runtime seam: where a pipeline's workers run.

The reconciler core decides what should exist; a runtime makes a pipeline's workers in one region
exist and reports on them. `KubernetesRuntime` writes Deployments (and their ConfigMap, Service,
PodDisruptionBudget, ServiceMonitor); `ProcessRuntime` runs `python -m pixelmesh.worker` processes
for the local stack. Both take the same `WorkerTarget`, so they cannot disagree about what a
pipeline's workers are.

The replica count is set in two ways only: at creation (`apply(target, replicas)`) and by
`scale`, the autoscaler seam's writer. `apply` never changes the count of existing workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from pixelmesh.api.messages import PipelineRef
from pixelmesh.operator.target import WorkerTarget


@dataclass(frozen=True, slots=True)
class RuntimeAction:
    """One change a runtime made, for Events and logs."""

    verb: str
    """`Created`, `Updated`, `Scaled`, `Deleted`, `Started`, `Stopped`."""
    kind: str
    name: str
    detail: str = ""

    def describe(self) -> str:
        text = f"{self.verb} {self.kind} {self.name}"
        return f"{text} ({self.detail})." if self.detail else f"{text}."


@dataclass(frozen=True, slots=True)
class WorkerObservation:
    """What a runtime sees of one pipeline's workers in one region."""

    exists: bool = False
    replicas: int | None = None
    """The count currently asked for (a Deployment's `spec.replicas`); None when there are no workers."""
    ready: int = 0
    available: int = 0
    updated: int = 0
    """Replicas running the current pipeline revision."""
    rolled_out: bool = False
    """Every replica runs the current revision and the runtime has caught up with the last change."""


@dataclass(frozen=True, slots=True)
class Applied:
    """The result of `apply`: what changed, and the workers as seen right after."""

    observation: WorkerObservation
    actions: list[RuntimeAction] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PlacedWorkers:
    """Workers a runtime holds for a pipeline, found by their labels."""

    pool: str
    region: str


class WorkerRuntime(Protocol):
    """Where workers run. Every method is idempotent; none raises for absent workers."""

    async def apply(self, target: WorkerTarget, replicas: int) -> Applied:
        """Make the workers' configuration match `target`; create them with `replicas` if absent."""
        ...

    async def scale(self, target: WorkerTarget, replicas: int) -> RuntimeAction | None:
        """Set the replica count (the autoscaler's writer); None when it already was `replicas`."""
        ...

    async def observe(self, target: WorkerTarget) -> WorkerObservation: ...

    async def placed(self, ref: PipelineRef) -> list[PlacedWorkers]:
        """Regions this runtime holds workers of `ref` in."""
        ...

    async def remove(self, ref: PipelineRef, region: str) -> list[RuntimeAction]:
        """Remove the pipeline's workers (and their configuration) in `region`."""
        ...
