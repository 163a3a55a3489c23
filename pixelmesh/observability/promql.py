"""Tiny PromQL builders shared by the dashboards and the alert rules.

Only string assembly: selectors with the label matchers a query needs, rates and quantiles. Each
function takes a series name from `series` (never a literal), so queries follow the metrics modules.
"""

from __future__ import annotations

from collections.abc import Iterable


def selector(series: str, *matchers: str) -> str:
    """`series{m1, m2}`, or the bare series when there is no matcher."""
    present = [m for m in matchers if m]
    return f"{series}{{{', '.join(present)}}}" if present else series


def by(labels: Iterable[str]) -> str:
    """`by (a, b)`, or nothing for no labels."""
    names = list(labels)
    return f" by ({', '.join(names)})" if names else ""


def rate_sum(
    series: str, *matchers: str, labels: Iterable[str] = (), window: str = "$__rate_interval"
) -> str:
    """`sum by (labels) (rate(series{matchers}[window]))`."""
    return f"sum{by(labels)} (rate({selector(series, *matchers)}[{window}]))"


def quantile(
    q: float,
    bucket_series: str,
    *matchers: str,
    labels: Iterable[str] = (),
    window: str = "$__rate_interval",
) -> str:
    """`histogram_quantile(q, sum by (le, labels) (rate(bucket{matchers}[window])))`."""
    grouped = ["le", *labels]
    return f"histogram_quantile({q}, {rate_sum(bucket_series, *matchers, labels=grouped, window=window)})"


def one_of(label: str, values: Iterable[str]) -> str:
    """`label=~"a|b"` for a fixed set of values (sorted, so the text is stable)."""
    return f'{label}=~"{"|".join(sorted(values))}"'
