"""Parsing at the boundary: bytes or dicts in, validated models out, ``EventInvalid`` on failure.

pydantic's ``ValidationError`` is translated here; its messages are used but never its
``input`` (which may hold a name or an NHS number), so a problem names the field only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from broker.errors import EventInvalid
from broker.events._consent import ConsentRecord
from broker.events._model import ContactEvent

__all__ = ["field_path", "parse_consent", "parse_consents", "parse_event", "problems_of"]

_M = TypeVar("_M", bound=BaseModel)

# Messages for error types whose stock text could echo part of the input.
_SAFE_MESSAGES = {
    "uuid_parsing": "is not a valid UUID",
    "uuid_type": "is not a valid UUID",
    "json_invalid": "is not valid JSON",
    "string_pattern_mismatch": "has an invalid format",
}


def field_path(loc: tuple[int | str, ...]) -> str:
    """``("subjects", 0, "nhs_number")`` → ``subjects[0].nhs_number``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(event)"


def problems_of(exc: ValidationError, prefix: str = "") -> list[tuple[str, str]]:
    """(field, message) pairs from a pydantic error, messages free of input values."""
    problems: list[tuple[str, str]] = []
    errors = exc.errors(include_input=False, include_url=False)
    locs = [e["loc"] for e in errors]
    for err in errors:
        # A list whose items failed is then also "too short": the item errors say it all.
        if err["type"] == "too_short" and any(
            len(other) > len(err["loc"]) and other[: len(err["loc"])] == err["loc"]
            for other in locs
        ):
            continue
        # Union and function-wrapper names in locations are noise to a user.
        loc = tuple(
            p
            for p in err["loc"]
            if not (isinstance(p, str) and ("[" in p or p in {"function-after"}))
        )
        message = _SAFE_MESSAGES.get(err["type"], err["msg"])
        message = message.removeprefix("Value error, ")
        if err["type"] == "extra_forbidden" and loc:
            # A key we do not know is the sender's text: it could be a name used as a key.
            loc = (*loc[:-1], "(unknown field)")
        path = field_path(loc)
        problems.append((f"{prefix}{path}" if prefix else path, message))
    return problems


def _validate(
    model: type[_M],
    data: bytes | str | Mapping[str, Any],
    context: dict[str, Any],
    prefix: str = "",
) -> _M:
    try:
        if isinstance(data, bytes | str):
            return model.model_validate_json(data, context=context)
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise EventInvalid(problems_of(exc, prefix)) from None


def parse_event(data: bytes | str | Mapping[str, Any], *, now: datetime) -> ContactEvent:
    """Validate a contact event (JSON bytes/str or a dict) against the clock ``now``."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not isinstance(data, bytes | str | Mapping):
        raise EventInvalid([("(event)", "must be a JSON object")])
    return _validate(ContactEvent, data, {"now": now})


def parse_consent(
    data: bytes | str | Mapping[str, Any], *, now: datetime | None, prefix: str = ""
) -> ConsentRecord:
    """Validate one consent record; with ``now``, a ``recorded_at`` in the future is refused."""
    if not isinstance(data, bytes | str | Mapping):
        raise EventInvalid([(prefix or "(consent)", "must be a mapping")])
    return _validate(ConsentRecord, data, {"now": now}, prefix)


def parse_consents(items: Iterable[Any], *, now: datetime | None) -> list[ConsentRecord]:
    """Validate a list of consent records, reporting every bad one as ``[i].field``."""
    records: list[ConsentRecord] = []
    problems: list[tuple[str, str]] = []
    for i, item in enumerate(items):
        try:
            records.append(parse_consent(item, now=now, prefix=f"[{i}]."))
        except EventInvalid as exc:
            problems.extend(exc.problems)
    if problems:
        raise EventInvalid(problems)
    return records
