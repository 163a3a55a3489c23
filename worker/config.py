"""The worker's configuration: one frozen, validated object read from `PIXELMESH_*` variables.

Every setting is a field of `WorkerConfig`; its variable is `PIXELMESH_` + the field name in upper
case (`fetch_batch` -> `PIXELMESH_FETCH_BATCH`), so the table in docs/worker.md, the Deployment the
operator renders and this class cannot drift apart. Tuples are comma-separated. Validation collects
every problem and reports them together, so a broken Deployment says everything wrong at once.

The pipeline the worker runs is not configured by variables: `pipeline_file` names the file the
operator renders (a `PipelineRevision`, YAML or JSON), read once at start-up.
"""

from __future__ import annotations

import math
import os
import socket
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Self

import yaml

from pixelmesh.api.messages import PipelineRevision

ENV_PREFIX = "PIXELMESH_"
LOG_FORMATS = ("json", "text")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class ConfigError(ValueError):
    """The configuration is invalid; the message lists every problem."""

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems or (message,)


def _invalid(problems: typing.Sequence[str]) -> ConfigError:
    return ConfigError("invalid worker configuration: " + "; ".join(problems), tuple(problems))


def available_cpus() -> int:
    """CPUs this process may use: the affinity mask, capped by a cgroup v2 CPU quota (Kubernetes limits)."""
    cpus = len(os.sched_getaffinity(0))
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def _default_worker_name() -> str:
    return os.environ.get("HOSTNAME") or f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """Everything a worker process needs besides its pipeline file."""

    pipeline_file: Path
    """The rendered pipeline (namespace, name, generation, spec) this worker runs."""
    nats_urls: tuple[str, ...] = ("nats://127.0.0.1:4222",)
    """Servers of the region's NATS cluster."""
    nats_credentials: Path | None = None
    """A NATS `.creds` file (JWT + nkey), when the cluster requires one."""
    region: str = "local"
    """The region this worker serves; stamped on results and metrics."""
    job_stream: str = ""
    """The stream to take jobs from; empty: the pipeline's job stream in `region`. Set for a drain
    of a failed region's jobs (its mirror here, or its cross-region stream)."""
    job_consumer: str = ""
    """The durable consumer on `job_stream`; empty: the workers' consumer."""
    drain_check_seconds: float = 5.0
    """How often to look for drains of failed regions the operator opened in this region."""
    worker_name: str = field(default_factory=_default_worker_name)
    """Names this worker in results, logs and the NATS connection (the pod name in Kubernetes)."""
    threads: int = 0
    """Threads running libvips pipelines; 0: available CPUs + 1 (measured, see docs/worker.md)."""
    concurrency: int = 0
    """Jobs in flight (fetched, loading, processing or storing); 0: twice `threads`."""
    vips_concurrency: int = 0
    """libvips' own threads per image; 0: automatic (`effective_vips_concurrency`)."""
    fetch_batch: int = 0
    """Most jobs one fetch asks for; 0: `concurrency`."""
    fetch_timeout_seconds: float = 5.0
    """How long one pull request waits for jobs when the queue is empty."""
    job_timeout_seconds: float = 60.0
    """Processing deadline of a job without its own earlier deadline."""
    io_timeout_seconds: float = 30.0
    """Longest a source load or an output store may take before the job is retried."""
    heartbeat_seconds: float = 0.0
    """Interval of `in_progress` heartbeats for running jobs; 0: a third of the consumer's ack wait."""
    stats_seconds: float = 5.0
    """Interval of service-rate reports (jobs served, busy time) to the worker-stats bucket."""
    retry_delays_seconds: tuple[float, ...] = (1.0, 5.0, 15.0, 60.0)
    """Nak delays after a transient failure, by delivery count (the last one repeats)."""
    drain_grace_seconds: float = 25.0
    """On SIGTERM, in-flight jobs get this long to finish; stay under terminationGracePeriodSeconds."""
    metrics_host: str = "0.0.0.0"  # noqa: S104 - a pod serves Prometheus on its own IP
    metrics_port: int = 9090
    """Port of `/metrics`, `/healthz` and `/readyz`; 0 picks a free one (tests)."""
    log_level: str = "INFO"
    log_format: str = "json"
    """`json` (one object per line, with job ids) or `text`."""

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise _invalid(problems)

    def problems(self) -> list[str]:
        """Every reason this configuration is unusable (empty if none)."""
        found = []
        if not self.nats_urls or not all(self.nats_urls):
            found.append("nats_urls must name at least one server")
        if not self.region:
            found.append("region must not be empty")
        if not self.worker_name:
            found.append("worker_name must not be empty")
        found.extend(
            f"{name} must be 0 (automatic) or positive"
            for name in ("threads", "concurrency", "vips_concurrency", "fetch_batch")
            if getattr(self, name) < 0
        )
        found.extend(
            f"{name} must be positive"
            for name in (
                "fetch_timeout_seconds",
                "drain_check_seconds",
                "job_timeout_seconds",
                "io_timeout_seconds",
                "drain_grace_seconds",
            )
            if getattr(self, name) <= 0
        )
        if self.stats_seconds <= 0:
            found.append("stats_seconds must be positive")
        if self.heartbeat_seconds < 0:
            found.append("heartbeat_seconds must be 0 (automatic) or positive")
        if not self.retry_delays_seconds or any(d < 0 for d in self.retry_delays_seconds):
            found.append("retry_delays_seconds must list at least one non-negative delay")
        if not 0 <= self.metrics_port <= 65535:
            found.append("metrics_port must be 0-65535")
        if self.log_level.upper() not in LOG_LEVELS:
            found.append(f"log_level must be one of {LOG_LEVELS}")
        if self.log_format not in LOG_FORMATS:
            found.append(f"log_format must be one of {LOG_FORMATS}")
        return found

    @property
    def effective_threads(self) -> int:
        """One more thread than CPUs: a pipeline holds the GIL for part of its time (Python glue
        between libvips calls), and the extra thread keeps the cores busy meanwhile."""
        return self.threads or available_cpus() + 1

    @property
    def effective_concurrency(self) -> int:
        """Enough jobs in flight that one is decoding while another loads or stores."""
        return max(self.concurrency or 2 * self.effective_threads, self.effective_threads)

    @property
    def effective_vips_concurrency(self) -> int | None:
        """libvips' threads per image; None leaves libvips' default (VIPS_CONCURRENCY, else one per core).

        Automatic: one when the worker's own threads already cover the CPUs. Jobs side by side
        then keep every core busy, and more threads per image only contend: web-set on 2 cores ran
        4.40 images/s with one libvips thread per image against 3.74 with two (docs/benchmarks.md).
        """
        if self.vips_concurrency:
            return self.vips_concurrency
        if os.environ.get("VIPS_CONCURRENCY"):
            return None
        return 1 if self.effective_threads >= available_cpus() else None

    @property
    def effective_fetch_batch(self) -> int:
        return min(self.fetch_batch or self.effective_concurrency, self.effective_concurrency)

    def retry_delay(self, delivered: int) -> float:
        """The nak delay after the `delivered`-th delivery failed transiently."""
        return self.retry_delays_seconds[min(max(delivered, 1), len(self.retry_delays_seconds)) - 1]

    @classmethod
    def from_env(cls, environ: typing.Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """Read `PIXELMESH_<FIELD>` variables; `overrides` (e.g. from the command line) win."""
        env = os.environ if environ is None else environ
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        problems = []
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            try:
                values[f.name] = _parse(hints[f.name], raw)
            except ValueError as exc:
                problems.append(f"{ENV_PREFIX}{f.name.upper()}={raw!r}: {exc}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "pipeline_file" not in values:
            problems.append(f"{ENV_PREFIX}PIPELINE_FILE is required")
        if problems:
            # Validate the settings that did parse as well, so one message says everything wrong.
            try:
                cls(**{"pipeline_file": Path(), **values})
            except ConfigError as invalid:
                problems.extend(invalid.problems)
            raise _invalid(problems)
        return cls(**values)


def _parse(hint: Any, raw: str) -> Any:
    """Turn a variable's text into the field's type (str, int, float, bool, Path, tuples, optionals)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _parse(inner, raw)
    if origin is tuple:
        item = typing.get_args(hint)[0]
        return tuple(_parse(item, part.strip()) for part in raw.split(",") if part.strip())
    if hint is bool:
        lowered = raw.strip().lower()
        if lowered not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            raise ValueError("expected a boolean")
        return lowered in ("1", "true", "yes", "on")
    if hint in (int, float, str, Path):
        return hint(raw.strip())
    raise ValueError(f"unsupported setting type {hint}")


def load_pipeline_file(path: Path) -> PipelineRevision:
    """Read and validate the rendered pipeline. YAML or JSON (JSON is YAML)."""
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read pipeline file {path}: {exc}") from exc
    try:
        return PipelineRevision.model_validate(document)
    except ValueError as exc:
        raise ConfigError(f"pipeline file {path} is not a valid pipeline: {exc}") from exc
