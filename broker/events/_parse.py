"""Parsing at the boundary: bytes or dicts in, validated models out, ``EventInvalid`` on failure.

pydantic's ``ValidationError`` is translated here; its messages are used but never its
``input`` (which may hold a name or an NHS number), so a problem names the field only.
"""

from __future__ import annotations

import codecs
import difflib
import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from broker._models import models_in
from broker.errors import EventInvalid
from broker.events._consent import ConsentRecord
from broker.events._model import ContactEvent

__all__ = [
    "DUPLICATE_KEY",
    "field_path",
    "near_field",
    "no_duplicate_keys",
    "parse_consent",
    "parse_consents",
    "parse_event",
    "problems_of",
]

#: Said of a JSON object that gives one key twice, here as by the gateway.
DUPLICATE_KEY = "a key appears twice in one JSON object"

_M = TypeVar("_M", bound=BaseModel)

# Messages for error types whose stock text could echo part of the input, or speaks of
# Python's types ("a valid tuple", "a valid dictionary") to someone who wrote JSON.
_SAFE_MESSAGES = {
    "uuid_parsing": "is not a valid UUID",
    "uuid_type": "is not a valid UUID",
    "json_invalid": "is not valid JSON",
    "string_pattern_mismatch": "has an invalid format",
    "tuple_type": "must be a list",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "missing": "is required",
    "extra_forbidden": "is not a field of this record",
    "date_type": "must be an ISO 8601 date, year first (2016-03-02)",
    "date_parsing": "must be an ISO 8601 date, year first (2016-03-02)",
    # A date written right that is no day of the calendar (2018-02-30): pydantic says "a
    # valid date or datetime", though a date-time is refused here.
    "date_from_datetime_parsing": "must be a real calendar date, year first (2016-03-02)",
    "datetime_type": "must be an ISO 8601 date-time (2026-11-21T22:40:00Z)",
    "datetime_parsing": "must be an ISO 8601 date-time (2026-11-21T22:40:00Z)",
    "datetime_from_date_parsing": "must be an ISO 8601 date-time (2026-11-21T22:40:00Z)",
}
# Counted in list items, whatever pydantic holds them in ("Tuple should have ...").
_LENGTH_MESSAGES = {
    "too_short": "must have at least {n} item{s}",
    "too_long": "must have at most {n} item{s}",
    "string_too_short": "must have at least {n} character{s}",
    "string_too_long": "must have at most {n} character{s}",
}
# A key we do not know is the sender's text: a mapping bug can put a surname or an NHS number
# where a key goes. It is named only when it is a near miss of one of that object's own field
# names (a typo: "occured_at"), and written as ours are (lowercase letters and underscores);
# anything else is "(unknown field)". The cutoff is high: "role" and "rose" are not near.
_FIELD_LIKE = re.compile(r"[a-z][a-z_]{0,39}")
_NEAR_MISS = 0.8


def _message(err: ErrorDetails) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind in _LENGTH_MESSAGES:
        bound = ctx.get("min_length" if kind.endswith("short") else "max_length")
        if isinstance(bound, int):
            return _LENGTH_MESSAGES[kind].format(n=bound, s="" if bound == 1 else "s")
    if kind == "literal_error" and isinstance(expected := ctx.get("expected"), str):
        return f"must be one of {expected}"  # the schema's values, never the input
    message = _SAFE_MESSAGES.get(kind, err["msg"]).removeprefix("Value error, ")
    # "Input should be 'child', 'parent' ..." and the like: the allowed values, not the input.
    return message.replace("Input should be", "must be", 1)


def _fields_at(model: type[BaseModel] | None, loc: tuple[int | str, ...]) -> frozenset[str]:
    """The field names of the object at ``loc`` within ``model`` (none if it cannot be told)."""
    current: list[type[BaseModel]] = [model] if model is not None else []
    for part in loc:
        if isinstance(part, int):
            continue  # an item of a list: the list's field named its model already
        inner: list[type[BaseModel]] = []
        for m in current:
            if (info := m.model_fields.get(part)) is not None:
                inner.extend(models_in(info.annotation))
        current = inner
    return frozenset(name for m in current for name in m.model_fields)


def _unknown_key(
    loc: tuple[int | str, ...], model: type[BaseModel] | None
) -> tuple[tuple[int | str, ...], str]:
    """Where an unknown key was and what to say: named, with our field it nearly is, only
    for a near miss of one of that object's fields."""
    key, where = loc[-1], loc[:-1]
    if isinstance(key, str) and (near := near_field(key, _fields_at(model, where))):
        return loc, f"is not a field of this record (did you mean {near!r}?)"
    return (*where, "(unknown field)"), _SAFE_MESSAGES["extra_forbidden"]


def near_field(key: str, fields: Iterable[str]) -> str | None:
    """The one of ``fields`` that ``key``, unknown, nearly is, if it is written as ours are
    (lowercase letters and underscores) and a near miss of one: only then may ``key`` be
    repeated to the user. None otherwise (the key could be personal data: say it unnamed)."""
    if not _FIELD_LIKE.fullmatch(key):
        return None
    near = difflib.get_close_matches(key, sorted(fields), 1, _NEAR_MISS)
    return near[0] if near else None


def field_path(loc: tuple[int | str, ...]) -> str:
    """``("subjects", 0, "nhs_number")`` → ``subjects[0].nhs_number``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(event)"


def problems_of(
    exc: ValidationError, prefix: str = "", model: type[BaseModel] | None = None
) -> list[tuple[str, str]]:
    """(field, message) pairs from a pydantic error, messages free of input values.

    ``model``, the one validated: an unknown key that nearly matches one of its fields is
    named (a typo); without it, or for any other key, only where it was is said.
    """
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
        message = _message(err)
        if err["type"] == "extra_forbidden" and loc:
            loc, message = _unknown_key(loc, model)
        path = field_path(loc)
        problems.append((f"{prefix}{path}" if prefix else path, message))
    return problems


def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads``'s ``object_pairs_hook`` refusing a key given twice: ``EventInvalid``
    (``(json)``: ``DUPLICATE_KEY``), whose problems a caller may re-file under its own path.
    Which of two values counts is the parser's choice, and the records system may have meant
    the other. Refused rather than guessed, as the gateway does."""
    out = dict(pairs)
    if len(out) != len(pairs):
        raise EventInvalid([("(json)", DUPLICATE_KEY)])
    return out


def _json_text(data: bytes | str, prefix: str) -> bytes | str:
    """``data`` without a leading byte-order mark (RFC 8259 lets a parser ignore one, and the
    gateway does); ``EventInvalid`` if an object in it gives a key twice. Text that is not
    JSON is left for pydantic to refuse, in its words."""
    data = (
        data.removeprefix(codecs.BOM_UTF8)
        if isinstance(data, bytes)
        else data.removeprefix("\ufeff")
    )
    try:
        json.loads(data, object_pairs_hook=no_duplicate_keys)
    except EventInvalid:  # a key given twice: said of the whole text
        path = field_path(())
        raise EventInvalid([(f"{prefix}{path}" if prefix else path, DUPLICATE_KEY)]) from None
    except (ValueError, RecursionError):  # not JSON (ValueError covers JSONDecodeError)
        pass
    return data


def _validate(
    model: type[_M],
    data: bytes | str | Mapping[str, Any],
    context: dict[str, Any],
    prefix: str = "",
) -> _M:
    if isinstance(data, bytes | str):
        data = _json_text(data, prefix)
    try:
        if isinstance(data, bytes | str):
            return model.model_validate_json(data, context=context)
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise EventInvalid(problems_of(exc, prefix, model)) from None


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
