"""The CEL rules of the CRDs: cross-field checks the API server makes at `kubectl apply` time.

The pydantic validators are the full truth and run in the operator; these rules repeat the ones a
platform team is most likely to trip over, so the mistake is refused with a clear message at apply
time instead of surfacing later as a condition. Each rule's message names the fields involved.

The rules rely on the schema's defaults being applied before validation (the API server does so),
so a field with a default can be read without `has()`.
"""

from __future__ import annotations

from typing import Any

from pixelmesh.api.base import ApiModel
from pixelmesh.api.pipeline import Resize, Step, Thumbnail, Watermark
from pixelmesh.api.resources import (
    Autoscaling,
    ImagePipelineSpec,
    Queue,
    RegionPoolSpec,
    Retry,
)

Rule = dict[str, Any]


def _rule(expression: str, message: str, *, field_path: str | None = None) -> Rule:
    # No `reason`: with one, the API server replaces the message by a generic text ("Duplicate value").
    rule: Rule = {"rule": expression, "message": message}
    if field_path is not None:
        rule["fieldPath"] = field_path
    return rule


def _step_members() -> list[str]:
    return [info.alias or name for name, info in Step.model_fields.items()]


def _exactly_one_step_member() -> Rule:
    members = _step_members()
    present = ", ".join(f"has(self.{m})" for m in members)
    return _rule(
        f"[{present}].filter(x, x).size() == 1",
        "a step sets exactly one operation, one of: " + ", ".join(members),
    )


RULES: dict[type[ApiModel], list[Rule]] = {
    Step: [_exactly_one_step_member()],
    Resize: [
        _rule("has(self.width) || has(self.height)", "resize needs width, height, or both"),
        _rule(
            "self.fit == 'inside' || (has(self.width) && has(self.height))",
            "resize with fit cover, contain or fill needs both width and height",
        ),
    ],
    Thumbnail: [
        _rule(
            "[self.crop != 'none', has(self.gravity), has(self.focalPoint)].filter(x, x).size() <= 1",
            "thumbnail takes at most one of crop, gravity and focalPoint",
        ),
        _rule(
            "(self.crop == 'none' && !has(self.gravity) && !has(self.focalPoint)) || has(self.height)",
            "a cropping thumbnail needs both width and height",
            field_path=".height",
        ),
    ],
    Watermark: [
        _rule("has(self.image) != has(self.text)", "watermark needs exactly one of image and text"),
    ],
    ImagePipelineSpec: [
        _rule(
            "self.variants.all(v, self.variants.exists_one(w, w.name == v.name))",
            "variant names must be unique",
            field_path=".variants",
        ),
        _rule(
            "!has(self.regions) || self.regions.all(r, self.regions.exists_one(s, s.pool == r.pool))",
            "each pool may be listed once in regions",
            field_path=".regions",
        ),
        _rule(
            "!has(self.regions) || size(self.regions) == 0 || self.regions.exists(r, r.weight > 0)",
            "at least one region needs a weight above 0, or no job could be routed",
            field_path=".regions",
        ),
    ],
    Autoscaling: [
        _rule(
            "self.minReplicas <= self.maxReplicas",
            "minReplicas must not exceed maxReplicas",
            field_path=".minReplicas",
        ),
        _rule(
            "self.minReplicas > 0 || self.scaleToZero",
            "minReplicas 0 needs scaleToZero: true",
            field_path=".minReplicas",
        ),
    ],
    Retry: [
        _rule(
            "!has(self.backoff) || size(self.backoff) <= self.maxDeliveries",
            "backoff may list at most maxDeliveries delays",
            field_path=".backoff",
        ),
        _rule(
            "duration(self.ackWait) > duration('0s')",
            "ackWait must be longer than 0s",
            field_path=".ackWait",
        ),
    ],
    Queue: [
        _rule(
            "duration(self.duplicateWindow) > duration('0s')",
            "duplicateWindow must be longer than 0s",
            field_path=".duplicateWindow",
        ),
        _rule(
            "duration(self.maxAge) == duration('0s')"
            " || duration(self.duplicateWindow) <= duration(self.maxAge)",
            "duplicateWindow may not exceed maxAge",
            field_path=".duplicateWindow",
        ),
    ],
    RegionPoolSpec: [
        _rule("self.region == oldSelf.region", "region is immutable", field_path=".region"),
        _rule(
            "!has(self.failover) || !has(self.failover.backupRegion)"
            " || self.failover.backupRegion != self.region",
            "a region cannot be its own backup",
            field_path=".failover.backupRegion",
        ),
    ],
}
"""CEL rules by model: attached to the model's schema wherever it appears."""


def rules_by_definition() -> dict[str, list[Rule]]:
    """The rules keyed by JSON schema definition name (pydantic names definitions by class)."""
    return {model.__name__: rules for model, rules in RULES.items()}
