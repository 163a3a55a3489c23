"""Every metric the gateway exports: names, help strings and labels in one place.

Dashboards and alerts query these names; keep them stable. Each gateway instance owns its
registry (not the process-wide default), so several gateways can live in one process (tests,
the local stack) without clashing.

Label cardinality is bounded: `route` is the route template, never the raw path; `pipeline` and
`region` come from the catalog and the configuration, never from a request.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CONTENT_TYPE_LATEST as PROMETHEUS_CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

PREFIX = "pixelmesh_gateway_"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

__all__ = ["PREFIX", "PROMETHEUS_CONTENT_TYPE", "GatewayMetrics"]


@dataclass
class GatewayMetrics:
    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            PREFIX + "requests_total",
            "HTTP requests answered, by route template, method and status code.",
            ["route", "method", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            PREFIX + "request_duration_seconds",
            "Time from request to complete response, by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.problems = Counter(
            PREFIX + "problems_total",
            "Problem responses, by problem code.",
            ["code"],
            registry=r,
        )
        self.jobs_accepted = Counter(
            PREFIX + "jobs_accepted_total",
            "Jobs published and acknowledged by JetStream, by pipeline and region.",
            ["pipeline", "region"],
            registry=r,
        )
        self.jobs_duplicate = Counter(
            PREFIX + "jobs_duplicate_total",
            "Submissions that JetStream recognised as a repeat of an accepted job id.",
            ["pipeline", "region"],
            registry=r,
        )
        self.routing_decisions = Counter(
            PREFIX + "routing_decisions_total",
            "Region choices for new jobs, by pipeline, region and why (home, weighted, default).",
            ["pipeline", "region", "decision"],
            registry=r,
        )
        self.wait_outcomes = Counter(
            PREFIX + "wait_outcomes_total",
            "Waits for a job's result, by outcome (succeeded, failed, timeout).",
            ["outcome"],
            registry=r,
        )
        self.upload_bytes = Counter(
            PREFIX + "upload_bytes_total",
            "Source bytes received, by pipeline.",
            ["pipeline"],
            registry=r,
        )
        self.sources_stored = Counter(
            PREFIX + "sources_stored_total",
            "Sources written to a region's store (an upload whose sha256 is already stored is not).",
            ["region"],
            registry=r,
        )
        self.download_bytes = Counter(
            PREFIX + "download_bytes_total",
            "Output bytes served.",
            registry=r,
        )
        self.image_requests = Counter(
            PREFIX + "image_requests_total",
            "Signed image URL requests, by outcome (stored, rendered); a 304 answer counts as stored.",
            ["outcome"],
            registry=r,
        )
        self.backlog = Gauge(
            PREFIX + "backlog_jobs",
            "The last observed backlog (pending + unacknowledged jobs) by pipeline and region.",
            ["pipeline", "region"],
            registry=r,
        )
        self.region_connected = Gauge(
            PREFIX + "region_connected",
            "1 while the gateway's NATS connection to the region is up.",
            ["region"],
            registry=r,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
