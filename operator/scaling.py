"""The replica seam: how many workers a pipeline gets in a region.

The reconciler asks a `ReplicaPolicy` for a count when it creates workers and on every pass
afterwards, and writes the count only when it differs from what is set (`runtime.scale`); it tells
the policy to `forget` a region the pipeline left and a pipeline that was deleted. The built-in
autoscaler (`pixelmesh.operator.autoscaler.Autoscaler`) is such a policy; `MinimumReplicas` applies
`autoscaling.minReplicas` (at least one worker unless scale-to-zero is allowed) where no autoscaler
runs. Under `autoscaling.engine: keda` the count is KEDA's, and the policy answers None: never
written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pixelmesh.api.messages import PipelineRef
from pixelmesh.api.resources import ScalingEngine
from pixelmesh.operator.autoscaling.policy import floor_replicas
from pixelmesh.operator.runtime import WorkerObservation
from pixelmesh.operator.target import WorkerTarget


@dataclass(frozen=True, slots=True)
class ScaleDecision:
    replicas: int
    reason: str
    """Shown in status (`scalingReason`) and in metrics."""


class ReplicaPolicy(Protocol):
    def initial(self, target: WorkerTarget) -> int:
        """The count to create workers with."""
        ...

    def desired(
        self, target: WorkerTarget, observed: WorkerObservation, backlog: int | None
    ) -> ScaleDecision | None:
        """The count the workers should have now; None leaves it to someone else."""
        ...

    def forget(self, ref: PipelineRef, region: str | None = None) -> None:
        """The pipeline left `region` (None: it was deleted); whatever was kept for it can go."""
        ...


class MinimumReplicas:
    """`minReplicas`, whatever the backlog: the policy before autoscaling decides."""

    def initial(self, target: WorkerTarget) -> int:
        return floor_replicas(target.spec.autoscaling)

    def desired(
        self,
        target: WorkerTarget,
        observed: WorkerObservation,
        backlog: int | None,
    ) -> ScaleDecision | None:
        if target.spec.autoscaling.engine is ScalingEngine.KEDA:
            return None
        return ScaleDecision(floor_replicas(target.spec.autoscaling), "minimum")

    def forget(self, ref: PipelineRef, region: str | None = None) -> None:
        """Nothing is kept per pipeline."""
