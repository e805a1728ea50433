"""The pydantic models a field's type holds, for messages that name the keys an object may have
(an event's fields; a policy file's keys) without knowing the model at that place."""

from __future__ import annotations

from typing import Any, get_args

from pydantic import BaseModel

__all__ = ["models_in"]


def models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models a field's type holds: ``Subject`` in ``tuple[Subject, ...] | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in get_args(annotation):
        found.extend(models_in(arg))
    return found
