"""The base of every config section: unknown keys are errors, and a number is a number."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

_NUMBERS = (int, float)


def _numeric(annotation: Any) -> bool:
    """A number type, or a union of number types and None (``int | None``)."""
    if annotation in _NUMBERS:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kinds = [a for a in typing.get_args(annotation) if a is not type(None)]
        return bool(kinds) and all(a in _NUMBERS for a in kinds)
    return False


class Section(BaseModel):
    """A frozen config section that refuses keys it does not know, and booleans where it
    wants a number: pydantic would read `max_waiters: true` (or `SET DAL pool.max_waiters =
    true`) as 1."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name, field in cls.model_fields.items():
                value = data.get(field.alias or name, data.get(name))
                if isinstance(value, bool) and _numeric(field.annotation):
                    raise ValueError(f"{field.alias or name}: {str(value).lower()} is a "
                                     "boolean; write a number")
        return data
