"""A small typed vocabulary for Grafana dashboard JSON: panels, queries, variables, rows.

Hand-built dashboard JSON drifts: ids collide, panels overlap, a query names a variable that no
longer exists. Here a dashboard is a list of rows of panels; `Dashboard.to_json()` numbers the
panels, lays them out on Grafana's 24-column grid row by row, and emits a deterministic document
(sorted keys, stable uid, no timestamps), so regenerating it changes nothing unless the code did.

Every query goes through the `datasource` variable, so a dashboard loaded by the Grafana sidecar
works with whatever the Prometheus data source is called there. The model targets Grafana 10+
(`schemaVersion` 39); older Grafanas migrate it on load.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

SCHEMA_VERSION = 39
GRID_WIDTH = 24
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

Json = dict[str, Any]
PanelType = Literal["timeseries", "stat", "state-timeline"]


@dataclass(frozen=True, slots=True)
class Query:
    """One PromQL query of a panel, with the legend Grafana shows for its series."""

    expr: str
    legend: str = ""
    instant: bool = False


@dataclass(frozen=True, slots=True)
class Panel:
    """A visualisation: a title, what it shows (queries), how (unit, type) and its size."""

    title: str
    queries: tuple[Query, ...]
    description: str
    unit: str = "short"
    type: PanelType = "timeseries"
    width: int = 12
    height: int = 8
    stacked: bool = False
    min_zero: bool = True
    decimals: int | None = None
    thresholds: tuple[tuple[float, str], ...] = ()
    """Steps above the base green, as (value, colour)."""
    mappings: tuple[tuple[int, str, str], ...] = ()
    """Values shown as words, as (value, text, colour): states such as a region's phase."""

    def to_json(self, panel_id: int, x: int, y: int) -> Json:
        refs = [chr(ord("A") + index) for index in range(len(self.queries))]
        targets = [
            {
                "datasource": DATASOURCE,
                "expr": query.expr,
                "instant": query.instant,
                "legendFormat": query.legend or "__auto",
                "range": not query.instant,
                "refId": ref,
            }
            for ref, query in zip(refs, self.queries, strict=True)
        ]
        defaults: Json = {
            "unit": self.unit,
            "thresholds": {
                "mode": "absolute",
                "steps": [{"color": "green", "value": None}]
                + [{"color": colour, "value": value} for value, colour in self.thresholds],
            },
        }
        if self.min_zero:
            defaults["min"] = 0
        if self.decimals is not None:
            defaults["decimals"] = self.decimals
        if self.mappings:
            defaults["mappings"] = [
                {
                    "options": {
                        str(value): {"color": colour, "index": index, "text": text}
                        for index, (value, text, colour) in enumerate(self.mappings)
                    },
                    "type": "value",
                }
            ]
            defaults["color"] = {"mode": "thresholds"}
        panel: Json = {
            "datasource": DATASOURCE,
            "description": self.description,
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "gridPos": {"h": self.height, "w": self.width, "x": x, "y": y},
            "id": panel_id,
            "targets": targets,
            "title": self.title,
            "type": self.type,
        }
        if self.type == "timeseries":
            defaults["custom"] = {
                "drawStyle": "line",
                "fillOpacity": 20 if self.stacked else 5,
                "lineWidth": 1,
                "showPoints": "never",
                "spanNulls": False,
                "stacking": {"group": "A", "mode": "normal" if self.stacked else "none"},
            }
            panel["options"] = {
                "legend": {"calcs": ["mean", "max"], "displayMode": "table", "placement": "bottom"},
                "tooltip": {"mode": "multi", "sort": "desc"},
            }
        elif self.type == "state-timeline":
            panel["options"] = {
                "alignValue": "center",
                "legend": {"displayMode": "list", "placement": "bottom", "showLegend": False},
                "mergeValues": True,
                "rowHeight": 0.8,
                "showValue": "auto",
                "tooltip": {"mode": "single", "sort": "none"},
            }
        else:
            panel["options"] = {
                "colorMode": "value",
                "graphMode": "area",
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "textMode": "auto",
            }
        return panel


@dataclass(frozen=True, slots=True)
class Row:
    """A titled band of panels, laid out left to right and wrapped at the grid width."""

    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True, slots=True)
class Variable:
    """A template variable filled from the values of a label (multi-select, with All)."""

    name: str
    label: str
    metric: str
    """The series whose label values fill the dropdown."""
    matchers: str = ""
    """Label matchers narrowing the series, e.g. `pipeline=~"$pipeline"` to chain variables."""

    def to_json(self) -> Json:
        selector = f"{self.metric}{{{self.matchers}}}" if self.matchers else self.metric
        query = f"label_values({selector}, {self.name})"
        return {
            "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "datasource": DATASOURCE,
            "definition": query,
            "hide": 0,
            "includeAll": True,
            "label": self.label,
            "multi": True,
            "name": self.name,
            "options": [],
            "query": {"qryType": 1, "query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
            "refresh": 2,
            "regex": "",
            "skipUrlSync": False,
            "sort": 1,
            "type": "query",
        }


def datasource_variable() -> Json:
    """The `datasource` variable every panel and query points at."""
    return {
        "current": {},
        "hide": 0,
        "includeAll": False,
        "label": "Data source",
        "multi": False,
        "name": "datasource",
        "options": [],
        "query": "prometheus",
        "refresh": 1,
        "regex": "",
        "skipUrlSync": False,
        "type": "datasource",
    }


@dataclass(frozen=True, slots=True)
class Dashboard:
    """A whole dashboard, identified by a uid that never changes (links and bookmarks keep working)."""

    uid: str
    title: str
    description: str
    rows: tuple[Row, ...]
    variables: tuple[Variable, ...] = ()
    tags: tuple[str, ...] = ("pixelmesh",)
    refresh: str = "30s"
    time_from: str = "now-6h"
    links: Sequence[Json] = field(default_factory=tuple)

    def to_json(self) -> Json:
        return {
            "annotations": {
                "list": [
                    {
                        "builtIn": 1,
                        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                        "enable": True,
                        "hide": True,
                        "iconColor": "rgba(0, 211, 255, 1)",
                        "name": "Annotations & Alerts",
                        "type": "dashboard",
                    }
                ]
            },
            "description": self.description,
            "editable": False,
            "fiscalYearStartMonth": 0,
            "graphTooltip": 1,
            "links": list(self.links),
            "panels": _layout(self.rows),
            "refresh": self.refresh,
            "schemaVersion": SCHEMA_VERSION,
            "tags": list(self.tags),
            "templating": {"list": [datasource_variable(), *(v.to_json() for v in self.variables)]},
            "time": {"from": self.time_from, "to": "now"},
            "timepicker": {},
            "timezone": "browser",
            "title": self.title,
            "uid": self.uid,
            "version": 1,
        }

    def render(self) -> str:
        """The dashboard as committed: indented, keys sorted, newline-terminated."""
        return json.dumps(self.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _layout(rows: Sequence[Row]) -> list[Json]:
    """Number panels from 1 and place them: each row header, then its panels wrapped at 24 columns."""
    placed: list[Json] = []
    next_id = 1
    y = 0
    for row in rows:
        placed.append(
            {
                "collapsed": False,
                "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y},
                "id": next_id,
                "panels": [],
                "title": row.title,
                "type": "row",
            }
        )
        next_id += 1
        y += 1
        x = 0
        line_height = 0
        for panel in row.panels:
            if panel.width > GRID_WIDTH:
                raise ValueError(f"panel {panel.title!r} is wider than the grid ({panel.width})")
            if x + panel.width > GRID_WIDTH:
                y += line_height
                x, line_height = 0, 0
            placed.append(panel.to_json(next_id, x, y))
            next_id += 1
            x += panel.width
            line_height = max(line_height, panel.height)
        y += line_height
    return placed
