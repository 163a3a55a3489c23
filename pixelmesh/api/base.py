"""The base every API model shares.

The models are the single source of truth for the CRDs, the worker's job and result messages, and
the files the local stack reads. Kubernetes speaks camelCase, Python speaks snake_case: fields are
snake_case in code and camelCase on the wire. Attribute docstrings become schema descriptions, so
`kubectl explain` shows the same words a reader of this code sees. Unknown fields are errors: a typo
in a spec must fail loudly, not be ignored.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    """A frozen, camelCase-on-the-wire model that rejects unknown fields."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
        validate_default=True,
    )

    def to_wire(self) -> dict[str, object]:
        """The JSON-compatible dict with camelCase keys and unset defaults left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
