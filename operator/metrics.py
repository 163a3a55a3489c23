"""Every metric the operator exports: names, help strings and labels live here and nowhere else.

Dashboards and alert rules query these names, so they are part of the operator's interface. All
are prefixed `pixelmesh_operator_`, except the built-in autoscaler's (`pixelmesh_autoscaler_`), and
live in the operator's own registry, served on the metrics port by `serve_metrics`.

Per-pipeline gauges are labelled by namespace, pipeline and region; `forget_pipeline` removes a
deleted pipeline's series so dashboards do not show ghosts.
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from pixelmesh.api.resources import RegionPhase

PREFIX = "pixelmesh_operator_"
REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILES = Counter(
    PREFIX + "reconciles_total",
    "Reconcile passes, by resource kind and result (success, error).",
    ["kind", "result"],
    registry=REGISTRY,
)
RECONCILE_ERRORS = Counter(
    PREFIX + "reconcile_errors_total",
    "Problems found while reconciling, by resource kind and condition reason.",
    ["kind", "reason"],
    registry=REGISTRY,
)
RECONCILE_DURATION = Histogram(
    PREFIX + "reconcile_duration_seconds",
    "Time one reconcile pass took, by resource kind.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
KUBE_WRITES = Counter(
    PREFIX + "kube_writes_total",
    "Writes to a Kubernetes API server, by cluster, kind and verb (post, patch, delete).",
    ["cluster", "kind", "verb"],
    registry=REGISTRY,
)
JETSTREAM_CHANGES = Counter(
    PREFIX + "jetstream_changes_total",
    "JetStream resources created or updated, by region and change (create, update).",
    ["region", "change"],
    registry=REGISTRY,
)
DESIRED_REPLICAS = Gauge(
    PREFIX + "desired_replicas",
    "Worker replicas the operator asks for, per pipeline and region.",
    ["namespace", "pipeline", "region"],
    registry=REGISTRY,
)
READY_REPLICAS = Gauge(
    PREFIX + "ready_replicas",
    "Worker replicas that are ready, per pipeline and region.",
    ["namespace", "pipeline", "region"],
    registry=REGISTRY,
)
BACKLOG = Gauge(
    PREFIX + "backlog_jobs",
    "Jobs waiting or in progress (consumer pending + ack pending), per pipeline and region.",
    ["namespace", "pipeline", "region"],
    registry=REGISTRY,
)
REGION_PHASE = Gauge(
    PREFIX + "region_phase",
    "1 for the phase a region is in, 0 for the others.",
    ["region", "phase"],
    registry=REGISTRY,
)
REGION_ROUND_TRIP = Gauge(
    PREFIX + "region_round_trip_seconds",
    "NATS round trip of the last successful probe of a region.",
    ["region"],
    registry=REGISTRY,
)
EFFECTIVE_WEIGHT = Gauge(
    PREFIX + "effective_weight_percent",
    "Share of a pipeline's new jobs routed to a region, as written to the routing table.",
    ["namespace", "pipeline", "region"],
    registry=REGISTRY,
)
MIRROR_LAG = Gauge(
    PREFIX + "mirror_lag_messages",
    "Jobs accepted in a region and not yet copied to its backup's mirror (the RPO of regional durability).",
    ["namespace", "pipeline", "region", "backup"],
    registry=REGISTRY,
)

AUTOSCALER_PREFIX = "pixelmesh_autoscaler_"
AUTOSCALER_DESIRED_REPLICAS = Gauge(
    AUTOSCALER_PREFIX + "desired_replicas",
    "Worker replicas the built-in autoscaler decided on, per pipeline and region (after capacity).",
    ["namespace", "pipeline", "region"],
    registry=REGISTRY,
)
AUTOSCALER_DECISIONS = Counter(
    AUTOSCALER_PREFIX + "decisions_total",
    "Autoscaler decisions, by pipeline, region, direction (up, down, hold) and reason "
    "(backlog, arrival-rate, capacity-capped, idle, minimum, maximum, stabilising, missing-metrics).",
    ["namespace", "pipeline", "region", "direction", "reason"],
    registry=REGISTRY,
)
AUTOSCALER_ARRIVAL_RATE = Gauge(
    AUTOSCALER_PREFIX + "arrival_rate",
    "Jobs per second arriving in the pipeline's stream, as the autoscaler measured them.",
    ["namespace", "pipeline", "region"],
    registry=REGISTRY,
)
AUTOSCALER_SERVICE_RATE = Gauge(
    AUTOSCALER_PREFIX + "service_rate",
    "Jobs per second one busy worker completes, from the workers' reports (the last good figure).",
    ["namespace", "pipeline", "region"],
    registry=REGISTRY,
)
AUTOSCALER_GAUGES = (AUTOSCALER_DESIRED_REPLICAS, AUTOSCALER_ARRIVAL_RATE, AUTOSCALER_SERVICE_RATE)


def record_region_phase(region: str, phase: RegionPhase) -> None:
    for candidate in RegionPhase:
        REGION_PHASE.labels(region=region, phase=candidate.value).set(1.0 if candidate == phase else 0.0)


def record_weights(namespace: str, pipeline: str, weights: dict[str, int]) -> None:
    for region, weight in weights.items():
        EFFECTIVE_WEIGHT.labels(namespace=namespace, pipeline=pipeline, region=region).set(weight)


def record_workers(
    namespace: str, pipeline: str, region: str, *, desired: int, ready: int, backlog: int | None
) -> None:
    DESIRED_REPLICAS.labels(namespace=namespace, pipeline=pipeline, region=region).set(desired)
    READY_REPLICAS.labels(namespace=namespace, pipeline=pipeline, region=region).set(ready)
    if backlog is not None:
        BACKLOG.labels(namespace=namespace, pipeline=pipeline, region=region).set(backlog)


def forget_pipeline(namespace: str, pipeline: str, regions: list[str]) -> None:
    for region in regions:
        for gauge in (DESIRED_REPLICAS, READY_REPLICAS, BACKLOG, EFFECTIVE_WEIGHT):
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, pipeline, region)
        forget_autoscaled(namespace, pipeline, region)


def record_decision(
    namespace: str,
    pipeline: str,
    region: str,
    *,
    desired: int,
    direction: str,
    reason: str,
    counted: bool = True,
) -> None:
    """A decision of the built-in autoscaler (`counted`: a decision of its own, not a capacity share
    moved by another pipeline's)."""
    labels = {"namespace": namespace, "pipeline": pipeline, "region": region}
    AUTOSCALER_DESIRED_REPLICAS.labels(**labels).set(desired)
    if counted:
        AUTOSCALER_DECISIONS.labels(**labels, direction=direction, reason=reason).inc()


def record_rates(
    namespace: str, pipeline: str, region: str, *, arrival_rate: float | None, service_rate: float | None
) -> None:
    """The rates the autoscaler measured (unknown ones leave the last figure)."""
    labels = {"namespace": namespace, "pipeline": pipeline, "region": region}
    if arrival_rate is not None:
        AUTOSCALER_ARRIVAL_RATE.labels(**labels).set(arrival_rate)
    if service_rate is not None:
        AUTOSCALER_SERVICE_RATE.labels(**labels).set(service_rate)


def forget_autoscaled(namespace: str, pipeline: str, region: str) -> None:
    """Drop the autoscaler's gauges of a pipeline's region (its decision counters stay: they are totals)."""
    for gauge in AUTOSCALER_GAUGES:
        with contextlib.suppress(KeyError):
            gauge.remove(namespace, pipeline, region)


def kube_writes() -> float:
    """Total writes to Kubernetes API servers so far (tests compare two readings)."""
    return sum(
        sample.value
        for metric in KUBE_WRITES.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


def serve_metrics(port: int, address: str = "0.0.0.0") -> None:  # noqa: S104 - a pod serves on its own IP
    """Serve `/metrics` from the operator's registry on `port` (in a background thread)."""
    start_http_server(port, addr=address, registry=REGISTRY)
