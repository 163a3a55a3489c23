"""Every metric the operator exports: names, help strings and labels live here and nowhere else.

Dashboards and alert rules query these names, so they are part of the operator's interface. All
are prefixed `pixelmesh_operator_` and live in the operator's own registry, served on the metrics
port by `serve_metrics`.

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


def record_region_phase(region: str, phase: RegionPhase) -> None:
    for candidate in RegionPhase:
        REGION_PHASE.labels(region=region, phase=candidate.value).set(1.0 if candidate == phase else 0.0)


def record_workers(
    namespace: str, pipeline: str, region: str, *, desired: int, ready: int, backlog: int | None
) -> None:
    DESIRED_REPLICAS.labels(namespace=namespace, pipeline=pipeline, region=region).set(desired)
    READY_REPLICAS.labels(namespace=namespace, pipeline=pipeline, region=region).set(ready)
    if backlog is not None:
        BACKLOG.labels(namespace=namespace, pipeline=pipeline, region=region).set(backlog)


def forget_pipeline(namespace: str, pipeline: str, regions: list[str]) -> None:
    for region in regions:
        for gauge in (DESIRED_REPLICAS, READY_REPLICAS, BACKLOG):
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
