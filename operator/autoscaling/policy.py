"""A pipeline's `spec.autoscaling` as the decision's `ScalingPolicy`, and the timing around it.

The API server's CEL rules refuse `minReplicas > maxReplicas` and `minReplicas: 0` without
`scaleToZero`, but the local stack reads YAML no API server checked: the mapping clamps instead of
raising, so a bad file cannot stop the autoscaler for every other pipeline.
"""

from __future__ import annotations

from pixelmesh.api.resources import Autoscaling, duration_seconds
from pixelmesh.operator.autoscaling.decision import ScalingPolicy

DEFAULT_INTERVAL = 5.0
"""Seconds between decisions for pipelines that set no `autoscaling.interval` (the operator's default)."""
MIN_INTERVAL = 0.1
"""Seconds: the shortest decision interval honoured, whatever the spec says."""
RATE_WINDOW_INTERVALS = 6
"""The arrival and service rates look back over this many decision intervals (30 s at 5 s)."""


def least_replicas(autoscaling: Autoscaling) -> int:
    """`minReplicas`, clamped to `maxReplicas`."""
    return min(autoscaling.min_replicas, autoscaling.max_replicas)


def floor_replicas(autoscaling: Autoscaling) -> int:
    """The fewest workers the spec allows when idle (one unless `scaleToZero`)."""
    floor = autoscaling.min_replicas if autoscaling.scale_to_zero else max(1, autoscaling.min_replicas)
    return min(floor, autoscaling.max_replicas)


def policy_from_spec(autoscaling: Autoscaling) -> ScalingPolicy:
    """The decision's knobs from the spec (durations in seconds)."""
    return ScalingPolicy(
        min_replicas=least_replicas(autoscaling),
        max_replicas=autoscaling.max_replicas,
        target_backlog_per_replica=autoscaling.target_backlog_per_replica,
        target_utilization=autoscaling.target_utilization,
        scale_down_window=duration_seconds(autoscaling.scale_down_delay),
        idle_after=duration_seconds(autoscaling.idle_after),
        scale_to_zero=autoscaling.scale_to_zero,
    )


def interval_seconds(autoscaling: Autoscaling, default: float = DEFAULT_INTERVAL) -> float:
    """Seconds between two decisions for the pipeline (`default` when its spec sets none)."""
    chosen = default if autoscaling.interval is None else duration_seconds(autoscaling.interval)
    return max(MIN_INTERVAL, chosen)


def rate_window(interval: float) -> float:
    """Seconds the arrival and service rates are measured over, for decisions every `interval` seconds."""
    return RATE_WINDOW_INTERVALS * interval
