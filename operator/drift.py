"""Has a child drifted from what we want, and what write brings it back?

Two signals, both needed:

- the spec-hash annotation says the child was written from a different desired object (the spec
  changed, or the operator's builders did);
- the containment check says someone edited a field we set: every value in the desired object must
  be found, equal, in the observed one. Fields the API server adds (defaults, status, clusterIP)
  are ignored, as are labels and annotations others add. Quantities are compared by value, since
  the server stores `0.5` as `500m`.

The write is a JSON merge patch of the desired object: maps merge, lists (containers, env,
volumes) are replaced whole, so a hand edit inside a container is undone. A merge patch cannot
remove a key it does not mention, so optional fields we may stop setting (`OPTIONAL_FIELDS`) are
sent as `null` when the desired object lacks them. Fields we never set are left to whoever set
them, as `kubectl apply` does.

`spec.replicas` of a Deployment is never in the desired object, so neither check nor patch touches
it; the scale decision is separate (`plan_scale`).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from pixelmesh.operator.builders.hashing import KubeObject, spec_hash_of

OPTIONAL_FIELDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "Deployment": (
        ("spec", "template", "spec", "priorityClassName"),
        ("spec", "template", "spec", "nodeSelector"),
        ("spec", "template", "spec", "tolerations"),
    ),
}
"""Per kind, paths we set only sometimes: absent from the desired object means remove them."""

_SUFFIXES = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "u": Decimal("0.000001"),
    "n": Decimal("0.000000001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
_QUANTITY = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:([eE][+-]?\d+)|([KMGTPE]i|[munkMGTPE]))?$")
_QUANTITY_KEYS = frozenset({"requests", "limits", "sizeLimit"})


def parse_quantity(value: object) -> Decimal | None:
    """A Kubernetes quantity's value (`1Gi` -> 1073741824, `500m` -> 0.5), or None if it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Decimal(str(value))
    if not isinstance(value, str):
        return None
    match = _QUANTITY.match(value.strip())
    if match is None:
        return None
    number, exponent, suffix = match.groups()
    try:
        base = Decimal(number)
    except InvalidOperation:
        return None
    if exponent:
        return base * Decimal(10) ** int(exponent[1:])
    return base * _SUFFIXES[suffix or ""]


def contains(desired: object, observed: object, *, quantities: bool = False) -> bool:
    """Every value of `desired` is in `observed` (maps: subset; lists: same length, item by item)."""
    if isinstance(desired, Mapping):
        if not isinstance(observed, Mapping):
            return False
        for key, value in desired.items():
            if value is None:
                if observed.get(key) is not None:
                    return False
                continue
            if key not in observed:
                if value in ({}, []):
                    continue  # the server drops empty maps and lists
                return False
            if not contains(value, observed[key], quantities=quantities or key in _QUANTITY_KEYS):
                return False
        return True
    if isinstance(desired, Sequence) and not isinstance(desired, str):
        if not isinstance(observed, Sequence) or isinstance(observed, str) or len(desired) != len(observed):
            return False
        return all(contains(d, o, quantities=quantities) for d, o in zip(desired, observed, strict=True))
    if desired == observed:
        return True
    if quantities:
        wanted, seen = parse_quantity(desired), parse_quantity(observed)
        return wanted is not None and wanted == seen
    return False


def _get(obj: Mapping[str, Any], path: Sequence[str]) -> object:
    node: object = obj
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _set(obj: dict[str, Any], path: Sequence[str], value: object) -> None:
    node = obj
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value


def with_removals(desired: KubeObject, observed: Mapping[str, Any] | None = None) -> KubeObject:
    """`desired` with `null` at every optional path it lacks (and `observed` has, when given)."""
    patch = copy.deepcopy(desired)
    for path in OPTIONAL_FIELDS.get(str(desired.get("kind")), ()):
        if _get(desired, path) is None and (observed is None or _get(observed, path) is not None):
            _set(patch, path, None)
    return patch


class ChildAction(StrEnum):
    CREATE = "create"
    PATCH = "patch"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class ChildPlan:
    """What to do about one child, and why."""

    action: ChildAction
    kind: str
    name: str
    body: KubeObject
    """The object to create, or the merge patch to send."""
    reason: str = ""


def plan_child(desired: KubeObject, observed: Mapping[str, Any] | None) -> ChildPlan:
    """Create when absent, patch when the hash differs or a field we set was edited, else nothing."""
    kind, name = str(desired["kind"]), str(desired["metadata"]["name"])
    if observed is None:
        return ChildPlan(ChildAction.CREATE, kind, name, desired, "absent")
    if spec_hash_of(dict(observed)) != spec_hash_of(desired):
        return ChildPlan(ChildAction.PATCH, kind, name, with_removals(desired, observed), "spec changed")
    patch = with_removals(desired, observed)
    if not contains(patch, observed):
        return ChildPlan(ChildAction.PATCH, kind, name, patch, "edited by hand")
    return ChildPlan(ChildAction.NONE, kind, name, {}, "")


@dataclass(frozen=True, slots=True)
class ScalePlan:
    """Whether to write a Deployment's replica count."""

    write: bool
    replicas: int
    current: int | None


def plan_scale(desired: int | None, current: int | None) -> ScalePlan:
    """Write only when a decision exists and differs from what is set (`None`: leave it alone)."""
    if desired is None:
        return ScalePlan(write=False, replicas=current or 0, current=current)
    return ScalePlan(desired != current, desired, current)
