"""The operator's configuration: one frozen object, from the command line or `PIXELMESH_OPERATOR_*`.

Every setting is a field of `OperatorSettings`; its variable is `PIXELMESH_OPERATOR_` + the field
name in upper case, and its option is `--` + the field name with dashes. The command line wins over
the environment. Tuples are comma-separated in variables and repeatable as options.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from pixelmesh.operator.autoscaling.policy import DEFAULT_INTERVAL
from pixelmesh.operator.target import DEFAULT_WORKER_IMAGE

ENV_PREFIX = "PIXELMESH_OPERATOR_"


@dataclass(frozen=True, slots=True)
class OperatorSettings:
    """How the operator runs."""

    namespaces: tuple[str, ...] = ()
    """Namespaces whose ImagePipelines are reconciled; empty: every namespace (cluster-wide)."""
    region: str = "local"
    """The name of the operator's own region, for pipelines that name no RegionPool."""
    nats_urls: tuple[str, ...] = ("nats://127.0.0.1:4222",)
    """NATS of the operator's own region."""
    worker_image: str = DEFAULT_WORKER_IMAGE
    """The worker image of pipelines that do not name one."""
    worker_image_pull_policy: str = ""
    worker_log_format: str = "json"
    log_format: str = "json"
    """The operator's own log lines: `json` (one object per line) or `text`."""
    resync_seconds: float = 30.0
    """Every pipeline is re-converged this often, whether or not anything changed."""
    autoscaler_interval_seconds: float = DEFAULT_INTERVAL
    """How often the built-in autoscaler decides for pipelines that set no `autoscaling.interval`."""
    metrics_port: int = 8080
    """Port of the operator's Prometheus metrics; 0 turns them off."""
    health_port: int = 8081
    """Port of the liveness endpoint (`/healthz`); 0 turns it off."""
    kubeconfig: Path | None = None
    """A kubeconfig to use instead of the in-cluster service account (or the default kubeconfig)."""
    geo_cluster: str = "geo"
    """The NATS cluster whose servers span regions, where `durability: geo` pipelines keep their jobs."""
    geo_replicas: int = 3
    """Copies of a `geo` stream, one per region (the cluster's `unique_tag` spreads them)."""

    def __post_init__(self) -> None:
        problems = []
        if self.resync_seconds <= 0:
            problems.append("resync_seconds must be positive")
        if self.autoscaler_interval_seconds <= 0:
            problems.append("autoscaler_interval_seconds must be positive")
        if not self.nats_urls:
            problems.append("nats_urls must name at least one server")
        if not 1 <= self.geo_replicas <= 5:
            problems.append("geo_replicas must be 1-5")
        problems += [
            f"{n} must be 0-65535"
            for n in ("metrics_port", "health_port")
            if not 0 <= getattr(self, n) <= 65535
        ]
        problems += [
            f"{n} must be json or text"
            for n in ("worker_log_format", "log_format")
            if getattr(self, n) not in ("json", "text")
        ]
        if problems:
            raise ValueError("invalid operator settings: " + "; ".join(problems))

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> OperatorSettings:
    """Settings from `argv` (default: `sys.argv[1:]`) over `environ` (default: the process environment)."""
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(
        prog="pixelmesh operator",
        description="Reconcile ImagePipelines and RegionPools into workers and JetStream resources.",
    )
    parser.add_argument(
        "--namespace", dest="namespaces", action="append", help="watch this namespace (repeatable)"
    )
    parser.add_argument("--all-namespaces", action="store_true", help="watch every namespace (the default)")
    parser.add_argument("--region", help="name of the operator's own region")
    parser.add_argument(
        "--nats-url", dest="nats_urls", action="append", help="NATS of the own region (repeatable)"
    )
    parser.add_argument("--worker-image", help="default worker image")
    parser.add_argument("--worker-image-pull-policy", help="default pull policy of worker images")
    parser.add_argument("--worker-log-format", choices=("json", "text"))
    parser.add_argument("--log-format", choices=("json", "text"), help="format of the operator's logs")
    parser.add_argument("--resync-seconds", type=float, help="interval of the drift-repair resync")
    parser.add_argument(
        "--autoscaler-interval-seconds",
        type=float,
        help="interval of autoscaling decisions for pipelines that set none",
    )
    parser.add_argument("--metrics-port", type=int, help="Prometheus metrics port (0: off)")
    parser.add_argument("--health-port", type=int, help="liveness port (0: off)")
    parser.add_argument("--kubeconfig", type=Path, help="kubeconfig file (default: in-cluster)")
    parser.add_argument("--geo-cluster", help="NATS cluster spanning regions, for durability: geo")
    parser.add_argument("--geo-replicas", type=int, help="replicas of a geo stream (one per region)")
    args = parser.parse_args(None if argv is None else list(argv))

    values: dict[str, object] = {}
    for field_ in fields(OperatorSettings):
        raw = env.get(ENV_PREFIX + field_.name.upper())
        if raw:
            default = field_.default
            if isinstance(default, tuple):
                values[field_.name] = _split(raw)
            elif isinstance(default, float):
                values[field_.name] = float(raw)
            elif isinstance(default, int):
                values[field_.name] = int(raw)
            elif field_.name == "kubeconfig":
                values[field_.name] = Path(raw)
            else:
                values[field_.name] = raw
    for name, value in vars(args).items():
        if name == "all_namespaces" or value is None:
            continue
        values[name] = tuple(value) if isinstance(value, list) else value
    if args.all_namespaces:
        values["namespaces"] = ()
    return OperatorSettings(**values)  # type: ignore[arg-type]
