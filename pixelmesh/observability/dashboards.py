"""PixelMesh's Grafana dashboards: overview, worker internals, operator and regions.

Every query is built from the metric objects of the components' metrics modules, so a renamed
metric breaks the generator (and its test), never a panel silently. Filters follow the labels each
metric really has: the `region` variable narrows only series that carry a region label.

The UIDs are part of the interface (links, bookmarks, alert annotations point at them): never change
one. Federation panels (mirror lag, cross-region traffic) come with the federation metrics.
"""

from __future__ import annotations

from pixelmesh.api.resources import RegionPhase
from pixelmesh.gateway.metrics import GatewayMetrics
from pixelmesh.observability import promql, series
from pixelmesh.observability.grafana import Dashboard, Panel, Query, Row, Variable
from pixelmesh.operator import metrics as operator_metrics
from pixelmesh.worker import metrics as worker_metrics

OVERVIEW_UID = "pixelmesh-overview"
WORKER_UID = "pixelmesh-worker"
OPERATOR_UID = "pixelmesh-operator"

PIPELINE = 'pipeline=~"($namespace)/($pipeline)"'
"""Workers and gateways label a pipeline `<namespace>/<name>`."""
OPERATOR_PIPELINE = ('namespace=~"$namespace"', 'pipeline=~"$pipeline"')
"""The operator labels it with `namespace` and `pipeline` (the name) apart."""
REGION = 'region=~"$region"'

PHASE_SEVERITY: tuple[tuple[RegionPhase, str], ...] = (
    (RegionPhase.HEALTHY, "green"),
    (RegionPhase.DEGRADED, "orange"),
    (RegionPhase.FAILED, "red"),
    (RegionPhase.UNKNOWN, "gray"),
)
"""A region's phase as a number for state timelines (its index here) and the colour it shows in."""

_gateway = GatewayMetrics()
"""An instance only to read metric names from: the gateway's metrics live on an instance."""


def _variables() -> tuple[Variable, ...]:
    """Namespace, pipeline and region, from the operator's view of what exists (idle pipelines too)."""
    desired = series.gauge(operator_metrics.DESIRED_REPLICAS)
    return (
        Variable(name="namespace", label="Namespace", metric=desired),
        Variable(name="pipeline", label="Pipeline", metric=desired, matchers='namespace=~"$namespace"'),
        Variable(
            name="region",
            label="Region",
            metric=desired,
            matchers='namespace=~"$namespace", pipeline=~"$pipeline"',
        ),
    )


def per_pipeline_region(operator_series: str) -> str:
    """An operator gauge summed per pipeline and region, narrowed by the dashboard's variables."""
    selected = promql.selector(operator_series, *OPERATOR_PIPELINE, REGION)
    return f"sum by (namespace, pipeline, region) ({selected})"


def region_phase_code(*matchers: str) -> str:
    """Each region's phase as its index in PHASE_SEVERITY (0 healthy ... 3 unknown)."""
    phase = series.gauge(operator_metrics.REGION_PHASE)
    terms = []
    for index, (value, _) in enumerate(PHASE_SEVERITY):
        if index:
            selected = promql.selector(phase, f'phase="{value.value}"', *matchers)
            terms.append(f"{index} * max by (region) ({selected})")
    return "\n  + ".join(terms)


def _links() -> tuple[dict[str, object], ...]:
    return (
        {
            "asDropdown": False,
            "includeVars": True,
            "keepTime": True,
            "tags": ["pixelmesh"],
            "title": "PixelMesh",
            "type": "dashboards",
        },
    )


def overview() -> Dashboard:
    """Is the platform keeping up, how fast, how wrong, per pipeline and region."""
    jobs = series.total(worker_metrics.JOBS)
    outcome = worker_metrics.Outcome
    succeeded = f'outcome="{outcome.SUCCEEDED}"'
    failed = f'outcome="{outcome.FAILED}"'
    finished = promql.one_of("outcome", (outcome.SUCCEEDED, outcome.FAILED))
    duration = series.bucket(worker_metrics.JOB_DURATION)
    wait = series.bucket(worker_metrics.QUEUE_WAIT)
    accepted = series.total(_gateway.jobs_accepted)
    backlog = series.gauge(operator_metrics.BACKLOG)
    desired = series.gauge(operator_metrics.DESIRED_REPLICAS)
    ready = series.gauge(operator_metrics.READY_REPLICAS)
    rejections = series.total(worker_metrics.REJECTIONS)
    dead = series.total(worker_metrics.DEAD_LETTERS)
    problems = series.total(_gateway.problems)
    pipeline_region = ("pipeline", "region")

    headline = Row(
        title="Now",
        panels=(
            Panel(
                title="Accepted jobs/s",
                description="Jobs the gateways published and JetStream acknowledged.",
                queries=(Query(promql.rate_sum(accepted, PIPELINE, REGION, window="5m")),),
                unit="reqps",
                type="stat",
                width=6,
                height=4,
            ),
            Panel(
                title="Completed jobs/s",
                description="Jobs the workers finished successfully.",
                queries=(Query(promql.rate_sum(jobs, succeeded, PIPELINE, REGION, window="5m")),),
                unit="reqps",
                type="stat",
                width=6,
                height=4,
            ),
            Panel(
                title="Failed jobs",
                description="Share of finished jobs that failed (bad input and platform failures).",
                queries=(
                    Query(
                        f"{promql.rate_sum(jobs, failed, PIPELINE, REGION, window='5m')}"
                        f" / {promql.rate_sum(jobs, finished, PIPELINE, REGION, window='5m')}"
                    ),
                ),
                unit="percentunit",
                type="stat",
                width=6,
                height=4,
                decimals=2,
                thresholds=((0.01, "orange"), (0.05, "red")),
            ),
            Panel(
                title="Backlog",
                description="Jobs waiting or in progress in the streams (consumer pending + ack pending).",
                queries=(Query(f"sum({promql.selector(backlog, *OPERATOR_PIPELINE, REGION)})"),),
                unit="short",
                type="stat",
                width=6,
                height=4,
            ),
        ),
    )
    throughput = Row(
        title="Throughput",
        panels=(
            Panel(
                title="Completed jobs/s by pipeline and region",
                description="Successful jobs per second.",
                queries=(
                    Query(
                        promql.rate_sum(jobs, succeeded, PIPELINE, REGION, labels=pipeline_region),
                        legend="{{pipeline}} {{region}}",
                    ),
                ),
                unit="reqps",
                stacked=True,
            ),
            Panel(
                title="Jobs/s by outcome",
                description=(
                    "Every job handling: succeeded, failed, retried (transient failure, nak'ed),"
                    " duplicate (already complete), released (given back on shutdown)."
                ),
                queries=(
                    Query(promql.rate_sum(jobs, PIPELINE, REGION, labels=("outcome",)), legend="{{outcome}}"),
                    Query(promql.rate_sum(accepted, PIPELINE, REGION), legend="accepted (gateway)"),
                ),
                unit="reqps",
            ),
        ),
    )
    latency = Row(
        title="Latency",
        panels=(
            Panel(
                title="Processing time (fetch to ack)",
                description="p50, p95 and p99 of the time a worker spends on a successful job.",
                queries=tuple(
                    Query(promql.quantile(q, duration, succeeded, PIPELINE), legend=f"p{round(q * 100)}")
                    for q in (0.5, 0.95, 0.99)
                ),
                unit="s",
            ),
            Panel(
                title="Queue wait (submit to fetch)",
                description="p50, p95 and p99 of the time from submission to a worker's fetch.",
                queries=tuple(
                    Query(promql.quantile(q, wait, PIPELINE), legend=f"p{round(q * 100)}")
                    for q in (0.5, 0.95, 0.99)
                ),
                unit="s",
            ),
            Panel(
                title="p95 processing time by pipeline",
                description="Which pipeline is slow.",
                queries=(
                    Query(
                        promql.quantile(0.95, duration, succeeded, PIPELINE, labels=("pipeline",)),
                        legend="{{pipeline}}",
                    ),
                ),
                unit="s",
                width=24,
            ),
        ),
    )
    errors = Row(
        title="Errors",
        panels=(
            Panel(
                title="Rejected jobs/s by reason",
                description="Jobs refused permanently by the workers: limits, formats, corrupt input.",
                queries=(
                    Query(promql.rate_sum(rejections, PIPELINE, labels=("reason",)), legend="{{reason}}"),
                ),
                unit="reqps",
                stacked=True,
                width=8,
            ),
            Panel(
                title="Dead letters/s by reason",
                description="Jobs that will not be retried and were kept for inspection.",
                queries=(Query(promql.rate_sum(dead, PIPELINE, labels=("reason",)), legend="{{reason}}"),),
                unit="reqps",
                stacked=True,
                width=8,
            ),
            Panel(
                title="Gateway problems/s by code",
                description="Problem responses of the gateways (4xx and 5xx), by problem code.",
                queries=(Query(promql.rate_sum(problems, labels=("code",)), legend="{{code}}"),),
                unit="reqps",
                stacked=True,
                width=8,
            ),
            Panel(
                title="Failed share by pipeline and region",
                description="Failed / finished jobs.",
                queries=(
                    Query(
                        f"{promql.rate_sum(jobs, failed, PIPELINE, REGION, labels=pipeline_region)}"
                        f"\n  / {promql.rate_sum(jobs, finished, PIPELINE, REGION, labels=pipeline_region)}",
                        legend="{{pipeline}} {{region}}",
                    ),
                ),
                unit="percentunit",
                width=24,
            ),
        ),
    )
    capacity = Row(
        title="Backlog and workers",
        panels=(
            Panel(
                title="Backlog by pipeline and region",
                description="Pending + unacknowledged jobs of each pipeline's stream in each region.",
                queries=(
                    Query(
                        per_pipeline_region(backlog),
                        legend="{{namespace}}/{{pipeline}} {{region}}",
                    ),
                ),
                unit="short",
            ),
            Panel(
                title="Worker replicas: desired vs ready",
                description=(
                    "Replicas the operator (autoscaler) asks for and replicas that are ready. A lasting gap"
                    " means pods cannot start: quota, capacity, image pulls, crash loops."
                ),
                queries=(
                    Query(
                        per_pipeline_region(desired),
                        legend="desired {{namespace}}/{{pipeline}} {{region}}",
                    ),
                    Query(
                        per_pipeline_region(ready),
                        legend="ready {{namespace}}/{{pipeline}} {{region}}",
                    ),
                ),
                unit="short",
            ),
        ),
    )
    return Dashboard(
        uid=OVERVIEW_UID,
        title="PixelMesh / Overview",
        description="Throughput, latency, errors and backlog of every PixelMesh pipeline, by region.",
        rows=(headline, throughput, latency, errors, capacity),
        variables=_variables(),
        links=_links(),
    )


def worker() -> Dashboard:
    """Inside the workers: where the time goes, how long jobs wait, what libvips holds."""
    step_bucket = series.bucket(worker_metrics.STEP_DURATION)
    step_sum = series.hsum(worker_metrics.STEP_DURATION)
    wait = series.bucket(worker_metrics.QUEUE_WAIT)
    memory = series.gauge(worker_metrics.LIBVIPS_MEMORY)
    highwater = series.gauge(worker_metrics.LIBVIPS_MEMORY_HIGHWATER)
    in_flight = series.gauge(worker_metrics.IN_FLIGHT)
    processing = series.gauge(worker_metrics.PROCESSING)
    threads = series.gauge(worker_metrics.THREADS)
    bytes_in = series.total(worker_metrics.BYTES_IN)
    bytes_out = series.total(worker_metrics.BYTES_OUT)
    fetch_errors = series.total(worker_metrics.FETCH_ERRORS)
    connected = series.gauge(worker_metrics.NATS_CONNECTED)
    reconnects = series.total(worker_metrics.NATS_RECONNECTS)

    steps = Row(
        title="Steps",
        panels=(
            Panel(
                title="p95 step duration",
                description="Decode, each operation and encode, at the 95th percentile.",
                queries=(
                    Query(promql.quantile(0.95, step_bucket, PIPELINE, labels=("step",)), legend="{{step}}"),
                ),
                unit="s",
            ),
            Panel(
                title="Time share by step",
                description="Seconds per second spent in each step across the workers: where the CPU goes.",
                queries=(Query(promql.rate_sum(step_sum, PIPELINE, labels=("step",)), legend="{{step}}"),),
                unit="s",
                stacked=True,
            ),
        ),
    )
    queue = Row(
        title="Queue and concurrency",
        panels=(
            Panel(
                title="Queue wait by pipeline",
                description="p50 and p95 of the time from submission to a worker's fetch.",
                queries=(
                    Query(
                        promql.quantile(0.5, wait, PIPELINE, labels=("pipeline",)), legend="p50 {{pipeline}}"
                    ),
                    Query(
                        promql.quantile(0.95, wait, PIPELINE, labels=("pipeline",)), legend="p95 {{pipeline}}"
                    ),
                ),
                unit="s",
            ),
            Panel(
                title="Jobs in flight and processing",
                description=(
                    "In flight: fetched and not yet settled. Processing: on a libvips thread now."
                    " Threads: the libvips threads available."
                ),
                queries=(
                    Query(f"sum({promql.selector(in_flight, PIPELINE)})", legend="in flight"),
                    Query(f"sum({promql.selector(processing, PIPELINE)})", legend="processing"),
                    Query(f"sum({threads})", legend="threads"),
                ),
                unit="short",
            ),
        ),
    )
    memory_row = Row(
        title="libvips memory",
        panels=(
            Panel(
                title="libvips tracked memory by pod",
                description="Pixel buffers libvips holds now, per worker pod.",
                queries=(Query(f"max by (pod) ({memory})", legend="{{pod}}"),),
                unit="bytes",
            ),
            Panel(
                title="libvips memory high-water mark by pod",
                description="The most libvips has held since the worker started: size memory limits by it.",
                queries=(Query(f"max by (pod) ({highwater})", legend="{{pod}}"),),
                unit="bytes",
            ),
        ),
    )
    io = Row(
        title="Bytes and NATS",
        panels=(
            Panel(
                title="Bytes in and out",
                description="Source bytes loaded and output bytes stored, by output format.",
                queries=(
                    Query(promql.rate_sum(bytes_in, PIPELINE), legend="in"),
                    Query(promql.rate_sum(bytes_out, PIPELINE, labels=("format",)), legend="out {{format}}"),
                ),
                unit="Bps",
                width=8,
            ),
            Panel(
                title="Fetch errors/s",
                description="Pull requests to JetStream that failed (empty polls are not errors).",
                queries=(
                    Query(
                        promql.rate_sum(fetch_errors, PIPELINE, labels=("pipeline",)), legend="{{pipeline}}"
                    ),
                ),
                unit="reqps",
                width=8,
            ),
            Panel(
                title="NATS connections",
                description="Workers connected to NATS, and reconnections after a lost connection.",
                queries=(
                    Query(f"sum({connected})", legend="connected"),
                    Query(f"sum(increase({reconnects}[$__rate_interval]))", legend="reconnects"),
                ),
                unit="short",
                width=8,
            ),
        ),
    )
    return Dashboard(
        uid=WORKER_UID,
        title="PixelMesh / Workers",
        description="Step durations, queue wait, concurrency, libvips memory and NATS health of the workers.",
        rows=(steps, queue, memory_row, io),
        variables=_variables()[:2],
        links=_links(),
    )


def operator() -> Dashboard:
    """The control plane: is it converging, how hard does it work, how are the regions."""
    reconciles = series.total(operator_metrics.RECONCILES)
    errors = series.total(operator_metrics.RECONCILE_ERRORS)
    duration = series.bucket(operator_metrics.RECONCILE_DURATION)
    writes = series.total(operator_metrics.KUBE_WRITES)
    jetstream = series.total(operator_metrics.JETSTREAM_CHANGES)
    round_trip = series.gauge(operator_metrics.REGION_ROUND_TRIP)
    weight = series.gauge(operator_metrics.EFFECTIVE_WEIGHT)
    mirror_lag = series.gauge(operator_metrics.MIRROR_LAG)
    desired = series.gauge(operator_metrics.DESIRED_REPLICAS)
    ready = series.gauge(operator_metrics.READY_REPLICAS)
    backlog = series.gauge(operator_metrics.BACKLOG)
    decisions = series.total(operator_metrics.AUTOSCALER_DECISIONS)
    autoscaler_desired = series.gauge(operator_metrics.AUTOSCALER_DESIRED_REPLICAS)
    arrival = series.gauge(operator_metrics.AUTOSCALER_ARRIVAL_RATE)
    service = series.gauge(operator_metrics.AUTOSCALER_SERVICE_RATE)

    reconcile = Row(
        title="Reconciling",
        panels=(
            Panel(
                title="Reconciles/s by kind and result",
                description="Reconcile passes over ImagePipelines and RegionPools (timers re-converge too).",
                queries=(
                    Query(
                        promql.rate_sum(reconciles, labels=("kind", "result")), legend="{{kind}} {{result}}"
                    ),
                ),
                unit="ops",
                width=8,
            ),
            Panel(
                title="Reconcile problems/s by reason",
                description="Problems found while reconciling, by the reason of the condition they set.",
                queries=(
                    Query(promql.rate_sum(errors, labels=("kind", "reason")), legend="{{kind}} {{reason}}"),
                ),
                unit="ops",
                stacked=True,
                width=8,
            ),
            Panel(
                title="Reconcile duration",
                description="p50 and p95 of one reconcile pass, by kind.",
                queries=(
                    Query(promql.quantile(0.5, duration, labels=("kind",)), legend="p50 {{kind}}"),
                    Query(promql.quantile(0.95, duration, labels=("kind",)), legend="p95 {{kind}}"),
                ),
                unit="s",
                width=8,
            ),
            Panel(
                title="Kubernetes writes/s",
                description=(
                    "Writes to API servers by cluster, kind and verb. A converged platform writes almost"
                    " nothing: a steady rate here is a fight over an object."
                ),
                queries=(
                    Query(
                        promql.rate_sum(writes, labels=("cluster", "kind", "verb")),
                        legend="{{cluster}} {{verb}} {{kind}}",
                    ),
                ),
                unit="ops",
            ),
            Panel(
                title="JetStream changes/s",
                description="Streams, consumers and buckets created or updated, by region.",
                queries=(
                    Query(
                        promql.rate_sum(jetstream, labels=("region", "change")),
                        legend="{{region}} {{change}}",
                    ),
                ),
                unit="ops",
            ),
        ),
    )
    regions = Row(
        title="Regions",
        panels=(
            Panel(
                title="Region phase",
                description="Each region's health as the operator judges it from its probes.",
                queries=(Query(region_phase_code(REGION), legend="{{region}}"),),
                type="state-timeline",
                unit="short",
                mappings=tuple(
                    (index, phase.value, colour) for index, (phase, colour) in enumerate(PHASE_SEVERITY)
                ),
                width=16,
            ),
            Panel(
                title="NATS round trip by region",
                description="Round trip of the operator's last successful probe of each region's NATS.",
                queries=(
                    Query(f"max by (region) ({promql.selector(round_trip, REGION)})", legend="{{region}}"),
                ),
                unit="s",
                width=8,
            ),
            Panel(
                title="Effective weight by pipeline and region",
                description=(
                    "The share of new jobs the routing table sends to each region: it drops to 0 when a"
                    " region fails and moves in steps during a traffic shift or a failback."
                ),
                queries=(
                    Query(
                        per_pipeline_region(weight),
                        legend="{{namespace}}/{{pipeline}} {{region}}",
                    ),
                ),
                unit="percent",
                width=12,
            ),
            Panel(
                title="Mirror lag (RPO of regional durability)",
                description=(
                    "Jobs accepted in a region and not yet copied to the mirror in its backup region:"
                    " what losing the region now would cost."
                ),
                queries=(
                    Query(
                        f"max by (namespace, pipeline, region, backup) ({promql.selector(mirror_lag)})",
                        legend="{{namespace}}/{{pipeline}} {{region}} -> {{backup}}",
                    ),
                ),
                unit="short",
                width=12,
            ),
        ),
    )
    workers = Row(
        title="Workers by pipeline and region",
        panels=(
            Panel(
                title="Desired and ready replicas",
                description="What the operator asks for and what is ready, per pipeline and region.",
                queries=(
                    Query(
                        per_pipeline_region(desired),
                        legend="desired {{namespace}}/{{pipeline}} {{region}}",
                    ),
                    Query(
                        per_pipeline_region(ready),
                        legend="ready {{namespace}}/{{pipeline}} {{region}}",
                    ),
                ),
                unit="short",
            ),
            Panel(
                title="Backlog",
                description="Pending + unacknowledged jobs, the autoscaler's main input.",
                queries=(
                    Query(
                        per_pipeline_region(backlog),
                        legend="{{namespace}}/{{pipeline}} {{region}}",
                    ),
                ),
                unit="short",
            ),
        ),
    )
    autoscaler = Row(
        title="Autoscaler",
        panels=(
            Panel(
                title="Scaling decisions/s by reason",
                description=(
                    "Why the autoscaler chose each count: backlog, arrival-rate, idle, minimum,"
                    " stabilising; maximum and capacity-capped mean the pipeline wanted more."
                ),
                queries=(
                    Query(
                        promql.rate_sum(decisions, *OPERATOR_PIPELINE, REGION, labels=("reason",)),
                        legend="{{reason}}",
                    ),
                ),
                unit="ops",
                stacked=True,
                width=8,
            ),
            Panel(
                title="Autoscaler's desired replicas",
                description="The count the built-in autoscaler decided on (after the region's capacity).",
                queries=(
                    Query(
                        per_pipeline_region(autoscaler_desired),
                        legend="{{namespace}}/{{pipeline}} {{region}}",
                    ),
                ),
                unit="short",
                width=8,
            ),
            Panel(
                title="Arrival rate vs service rate of the ready workers",
                description=(
                    "Jobs/s arriving, and jobs/s the ready workers can complete (measured rate per"
                    " worker x ready workers). Arrivals above capacity grow the backlog."
                ),
                queries=(
                    Query(
                        per_pipeline_region(arrival), legend="arriving {{namespace}}/{{pipeline}} {{region}}"
                    ),
                    Query(
                        f"{per_pipeline_region(service)}\n  * {per_pipeline_region(ready)}",
                        legend="capacity {{namespace}}/{{pipeline}} {{region}}",
                    ),
                ),
                unit="reqps",
                width=8,
            ),
        ),
    )
    return Dashboard(
        uid=OPERATOR_UID,
        title="PixelMesh / Operator and regions",
        description=(
            "Reconciles, errors and API writes of the operator; phase and round trip of each region;"
            " desired and ready workers; the autoscaler's decisions. Mirror lag and traffic weights"
            " come with federation."
        ),
        rows=(reconcile, regions, workers, autoscaler),
        variables=_variables(),
        links=_links(),
    )


def dashboards() -> tuple[Dashboard, ...]:
    """Every dashboard the chart ships."""
    return (overview(), worker(), operator())
