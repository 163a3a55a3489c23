"""The pydantic-to-structural conversion, on small models."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import Field

from pixelmesh.api.base import ApiModel
from pixelmesh.operator.crd.structural import SchemaError, to_structural


class Inner(ApiModel):
    """An inner object."""

    size: int = Field(default=3, ge=1)
    """How big."""


class Marker(ApiModel):
    """A marker with no fields."""


class Outer(ApiModel):
    """The outer object."""

    inner: Inner | None = None
    """The field's own words win over the type's."""
    ratio: float = Field(default=0.5, gt=0.0, le=1.0)
    amount: Annotated[int, Field(ge=0)] | Annotated[str, Field(pattern=r"^\d+[KMG]i$")] = 1
    names: list[str] = Field(default_factory=list, max_length=4)
    labels: dict[str, str] = Field(default_factory=dict)
    marker: Marker | None = None


class Described(ApiModel):
    """A summary line.

    A second paragraph that
    runs over two lines."""

    wrapped: int = 1
    """A field whose docstring
    is wrapped."""


class Bad(ApiModel):
    either: int | bool = 1


def convert(model: type[ApiModel]) -> dict[str, object]:
    return to_structural(model.model_json_schema(by_alias=True), {"Inner": [{"rule": "self.size < 10"}]})


def test_references_are_inlined_and_the_fields_description_wins() -> None:
    schema = convert(Outer)
    inner = schema["properties"]["inner"]  # type: ignore[index]
    assert inner["type"] == "object"
    assert inner["description"] == "The field's own words win over the type's."
    assert inner["properties"]["size"] == {
        "type": "integer",
        "description": "How big.",
        "default": 3,
        "minimum": 1,
    }
    assert inner["x-kubernetes-validations"] == [{"rule": "self.size < 10"}]


def test_optional_fields_are_neither_nullable_nor_required() -> None:
    schema = convert(Outer)
    assert "required" not in schema
    assert "nullable" not in schema["properties"]["inner"]  # type: ignore[index]


def test_exclusive_bounds_use_the_boolean_form() -> None:
    ratio = convert(Outer)["properties"]["ratio"]  # type: ignore[index]
    assert ratio["minimum"] == 0.0
    assert ratio["exclusiveMinimum"] is True
    assert ratio["maximum"] == 1.0


def test_int_or_string_unions_become_int_or_string_with_the_strings_pattern() -> None:
    amount = convert(Outer)["properties"]["amount"]  # type: ignore[index]
    assert amount["x-kubernetes-int-or-string"] is True
    assert amount["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    assert amount["pattern"] == r"^\d+[KMG]i$"


def test_maps_and_empty_marker_objects_keep_their_shape() -> None:
    properties = convert(Outer)["properties"]
    assert properties["labels"] == {"type": "object", "additionalProperties": {"type": "string"}}  # type: ignore[index]
    assert properties["marker"]["properties"] == {}  # type: ignore[index]
    assert "additionalProperties" not in properties["marker"]  # type: ignore[index]


def test_a_union_kubernetes_cannot_express_is_refused() -> None:
    with pytest.raises(SchemaError, match="int-or-string"):
        convert(Bad)


def test_descriptions_join_wrapped_lines_and_keep_paragraph_breaks() -> None:
    schema = convert(Described)
    assert schema["description"] == "A summary line.\n\nA second paragraph that runs over two lines."
    assert schema["properties"]["wrapped"]["description"] == "A field whose docstring is wrapped."  # type: ignore[index]
