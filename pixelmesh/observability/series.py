"""Series names derived from the metric objects the components export, and the names they export.

Dashboards and alert rules must not spell a metric name by hand: a rename in a component's metrics
module would leave a panel silently empty. Queries are built from the metric objects themselves
(`total(JOBS)` is `pixelmesh_worker_jobs_total`), and `exported_series` lists every series name a
registry can expose, so a test can check each name a query mentions against what the code exports.

prometheus_client names a counter's family without `_total` and an info metric's without `_info`;
the sample names (what PromQL sees) are derived here from the family type.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Metric
from prometheus_client.metrics import MetricWrapperBase

_SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "summary": ("_sum", "_count", ""),
    "info": ("_info",),
    "stateset": ("",),
    "unknown": ("",),
}
# Promql words that look like metric names in an expression but are not.
_PROMQL_WORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}
)
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def _family(metric: MetricWrapperBase) -> Metric:
    (family,) = metric.describe()
    return family


def _sample(metric: MetricWrapperBase, suffix: str) -> str:
    family = _family(metric)
    if suffix not in _SUFFIXES[family.type]:
        raise ValueError(f"{family.name} is a {family.type}: it has no {suffix or 'bare'} series")
    return family.name + suffix


def total(metric: MetricWrapperBase) -> str:
    """A counter's series: `<name>_total`."""
    return _sample(metric, "_total")


def gauge(metric: MetricWrapperBase) -> str:
    """A gauge's series."""
    return _sample(metric, "")


def bucket(metric: MetricWrapperBase) -> str:
    """A histogram's bucket series (for `histogram_quantile`)."""
    return _sample(metric, "_bucket")


def hsum(metric: MetricWrapperBase) -> str:
    """A histogram's sum series."""
    return _sample(metric, "_sum")


def count(metric: MetricWrapperBase) -> str:
    """A histogram's count series."""
    return _sample(metric, "_count")


def labels(metric: MetricWrapperBase) -> tuple[str, ...]:
    """The label names of a metric (to build a query only from labels it has)."""
    names: tuple[str, ...] = metric._labelnames  # prometheus_client has no public accessor
    return names


def exported_series(registries: Iterable[CollectorRegistry]) -> frozenset[str]:
    """Every series name the registries can expose, whether or not a sample exists yet."""
    names: set[str] = set()
    for registry in registries:
        for family in registry.collect():
            names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return frozenset(names)


def referenced_series(expr: str, prefix: str = "pixelmesh_") -> frozenset[str]:
    """The series names with `prefix` that a PromQL expression mentions.

    Label values and template text inside quotes are skipped, so `reason="pixelmesh_x"` is not a
    reference.
    """
    unquoted = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    return frozenset(
        word for word in _NAME.findall(unquoted) if word.startswith(prefix) and word not in _PROMQL_WORDS
    )
