"""Turn a pydantic JSON schema into a Kubernetes structural schema.

pydantic speaks JSON Schema 2020-12; a CRD speaks a structural subset of OpenAPI v3. The
differences that matter:

- no `$ref`: every definition is inlined (and a field's own description wins over its type's);
- a description is prose that `kubectl explain` wraps: a docstring's line breaks within a
  paragraph are joined;
- no `title`, no `additionalProperties: false` (the API server prunes unknown fields and, with
  kubectl's strict field validation, refuses them), no `default: null`;
- `Optional[X]` (`anyOf [X, null]`) is just X, not required; `const` is a one-value `enum`;
- `exclusiveMinimum: 0` is `minimum: 0, exclusiveMinimum: true` (draft 4 style);
- `int | str` is the one union Kubernetes knows: `x-kubernetes-int-or-string` with the
  `anyOf [integer, string]` it requires, the string's pattern lifted to the top.

CEL rules (`x-kubernetes-validations`) are attached to the inlined definitions by model name.
Anything else that a structural schema cannot say raises `SchemaError`, so a model change that
would produce a CRD the API server refuses fails here first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Schema = dict[str, Any]

_DROPPED = frozenset({"title", "$defs", "discriminator", "examples"})
_PASSED = frozenset(
    {
        "type",
        "description",
        "format",
        "pattern",
        "enum",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "multipleOf",
        "required",
        "nullable",
    }
)


class SchemaError(ValueError):
    """The model cannot be expressed as a structural schema."""


def to_structural(schema: Mapping[str, Any], rules: Mapping[str, list[Schema]] | None = None) -> Schema:
    """The structural schema of a pydantic model's JSON schema (`model_json_schema(by_alias=True)`).

    `rules` maps a definition's name (the model's class name) to CEL rules for it.
    """
    definitions: Mapping[str, Any] = schema.get("$defs", {})
    rules = rules or {}
    root_name = schema.get("title", "")
    converted = _convert(schema, definitions, rules, path="")
    if root_name in rules:
        converted["x-kubernetes-validations"] = [dict(rule) for rule in rules[root_name]]
    return _ordered(converted)


_KEY_ORDER = (
    "type",
    "description",
    "format",
    "enum",
    "default",
    "pattern",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "required",
    "properties",
    "items",
    "additionalProperties",
)


def _ordered(node: Schema) -> Schema:
    """Keys in a reading order (type and description first), recursively; the content is unchanged."""
    rank = {key: index for index, key in enumerate(_KEY_ORDER)}
    out: Schema = {}
    for key in sorted(node, key=lambda k: (rank.get(k, len(rank)), k)):
        value = node[key]
        if key == "properties":
            value = {name: _ordered(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            value = _ordered(value)
        out[key] = value
    return out


def _convert(
    node: Mapping[str, Any], defs: Mapping[str, Any], rules: Mapping[str, list[Schema]], path: str
) -> Schema:
    if "$ref" in node:
        return _inline(node, defs, rules, path)
    if "anyOf" in node:
        return _union(node, defs, rules, path)
    if "allOf" in node or "oneOf" in node or "not" in node:
        raise SchemaError(f"{path or '<root>'}: allOf/oneOf/not are not structural")

    out: Schema = {}
    for key, value in node.items():
        out.update(_convert_keyword(key, value, defs, rules, path))
    if "type" not in out and not out.get("x-kubernetes-int-or-string"):
        raise SchemaError(f"{path or '<root>'}: every node needs a type")
    if out.get("type") == "array" and "description" not in out and "description" in out.get("items", {}):
        # `kubectl explain` shows a list field's own description: lend it the item type's.
        out["description"] = out["items"].pop("description")
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        # A model without fields (a marker such as `flip: {}`): keep it an empty object.
        out["properties"] = {}
    return out


def _convert_keyword(
    key: str, value: Any, defs: Mapping[str, Any], rules: Mapping[str, list[Schema]], path: str
) -> Schema:
    """The structural form of one keyword of a node (possibly several keywords, possibly none)."""
    if key in _DROPPED or (key == "default" and value is None):
        return {}
    if key == "description":
        return {key: _prose(value)}
    if key in _PASSED or key.startswith("x-kubernetes-") or key == "default":
        return {key: value}
    if key == "const":
        return {"enum": [value]}
    if key in ("exclusiveMinimum", "exclusiveMaximum"):
        return {"minimum" if key == "exclusiveMinimum" else "maximum": value, key: True}
    if key == "properties":
        return {
            "properties": {name: _convert(sub, defs, rules, f"{path}.{name}") for name, sub in value.items()}
        }
    if key == "items":
        return {"items": _convert(value, defs, rules, f"{path}[]")}
    if key == "additionalProperties":
        # `false` only repeats what pruning does; a schema is a map's value type.
        return {key: _convert(value, defs, rules, f"{path}{{}}")} if isinstance(value, Mapping) else {}
    if key == "uniqueItems":
        raise SchemaError(f"{path}: uniqueItems is not allowed; use x-kubernetes-list-type or CEL")
    raise SchemaError(f"{path or '<root>'}: no structural equivalent for {key!r}")


def _prose(docstring: str) -> str:
    """A docstring's paragraphs, each on one line: `kubectl explain` wraps text itself, and the
    docstring's own line breaks would show as breaks in mid-sentence."""
    paragraphs = (" ".join(paragraph.split()) for paragraph in docstring.split("\n\n"))
    return "\n\n".join(paragraph for paragraph in paragraphs if paragraph)


def _inline(
    node: Mapping[str, Any], defs: Mapping[str, Any], rules: Mapping[str, list[Schema]], path: str
) -> Schema:
    ref: str = node["$ref"]
    name = ref.rsplit("/", 1)[-1]
    if name not in defs:
        raise SchemaError(f"{path}: unresolved reference {ref}")
    target = _convert(defs[name], defs, rules, path)
    siblings = _convert({"type": "_", **{k: v for k, v in node.items() if k != "$ref"}}, defs, rules, path)
    siblings.pop("type")
    merged = {**target, **siblings}
    if name in rules:
        merged["x-kubernetes-validations"] = [dict(rule) for rule in rules[name]]
    return merged


def _union(
    node: Mapping[str, Any], defs: Mapping[str, Any], rules: Mapping[str, list[Schema]], path: str
) -> Schema:
    members = [m for m in node["anyOf"] if m != {"type": "null"}]
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    if len(members) == 1:
        inner = _convert(members[0], defs, rules, path)
        outer = _convert({"type": "_", **rest}, defs, rules, path)
        outer.pop("type")
        return {**inner, **outer}
    types = sorted(m.get("type", "") for m in members)
    if types == ["integer", "string"]:
        out: Schema = {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
        }
        string = next(m for m in members if m.get("type") == "string")
        for key in ("pattern", "maxLength"):
            if key in string:
                out[key] = string[key]
        outer = _convert({"type": "_", **rest}, defs, rules, path)
        outer.pop("type")
        return {**out, **outer}
    raise SchemaError(f"{path}: a union of {types} is not structural; only int-or-string is")
