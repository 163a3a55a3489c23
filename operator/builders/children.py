"""Every Kubernetes child of one pipeline in one region, as one list in apply order.

The ConfigMap (and the credentials Secret) come before the Deployment that mounts them, so a new
pod never starts against a missing volume.
"""

from __future__ import annotations

from dataclasses import dataclass

from pixelmesh.api.resources import ScalingEngine
from pixelmesh.operator.builders.config_map import build_pipeline_config_map
from pixelmesh.operator.builders.disruption import build_disruption_budget
from pixelmesh.operator.builders.hashing import KubeObject
from pixelmesh.operator.builders.monitoring import build_service_monitor
from pixelmesh.operator.builders.scaled_object import build_scaled_object
from pixelmesh.operator.builders.secrets import build_nats_credentials_secret
from pixelmesh.operator.builders.service import build_metrics_service
from pixelmesh.operator.builders.workers import build_worker_deployment
from pixelmesh.operator.target import WorkerTarget


@dataclass(frozen=True, slots=True)
class ChildOptions:
    """What the cluster offers, decided by observation, not by the spec."""

    service_monitor: bool = False
    """The Prometheus Operator's ServiceMonitor CRD exists."""
    nats_credentials: bytes | None = None
    """The region's `.creds` file, when its RegionPool names one."""
    scaled_object: bool = False
    """KEDA's ScaledObject CRD exists."""


def wants_scaled_object(target: WorkerTarget, options: ChildOptions) -> bool:
    """A KEDA ScaledObject belongs to the workers: the pipeline chose KEDA and KEDA is installed."""
    return options.scaled_object and target.spec.autoscaling.engine is ScalingEngine.KEDA


def build_children(target: WorkerTarget, options: ChildOptions) -> list[KubeObject]:
    """The desired children, dependencies first."""
    children: list[KubeObject] = [build_pipeline_config_map(target)]
    if options.nats_credentials is not None:
        children.append(build_nats_credentials_secret(target, options.nats_credentials))
    children += [
        build_worker_deployment(target),
        build_metrics_service(target),
        build_disruption_budget(target),
    ]
    if options.service_monitor:
        children.append(build_service_monitor(target))
    if wants_scaled_object(target, options):
        children.append(build_scaled_object(target))  # after the Deployment it scales
    return children
