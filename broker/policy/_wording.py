"""Plain words for pydantic's errors in bundle and scenario files.

``accord policy check`` is read by information-governance officers, not Python programmers:
"String should match pattern '^[a-z]...'" or "Field required" tells them nothing they can act
on. The few error types a policy author meets are said in the bundle's own terms; any other
message is kept as pydantic wrote it.
"""

from __future__ import annotations

import difflib
import re
from typing import Final

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from broker._models import models_in
from broker._words import closest
from broker.policy._flags import FLAG_ID_PATTERN
from broker.policy._model import PURPOSE_PATTERN

__all__ = ["NUMBER_OR_TEXT", "UNION_WORDS", "key_not_text", "plain_message", "text_key"]

# Keys are policy words, never personal data, so a looser match than the event parser's
# helps: "form" is "from", "whne" is "when".
_NEAR_MISS: Final = 0.7


def plain_message(
    err: ErrorDetails, model: type[BaseModel] | None, filled: frozenset[str] = frozenset()
) -> str:
    """What ``err`` means, in words; ``model`` is the one validated (its fields are what an
    unknown key is compared with), ``err["loc"]`` relative to it. ``filled`` are ``model``'s
    fields the loader fills in itself (a party's id is its mapping key), which no file spells.

    No value from the file is quoted, but for the spelling a purpose is suggested: a value
    may hold a newline (one problem is one line) or be something typed in the wrong place."""
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if (typed := _typed(err)) is not None:
        return typed
    if kind == "extra_forbidden":
        return _unknown_key(err["loc"], model, filled)
    if kind in {"literal_error", "enum"} and isinstance(expected := ctx.get("expected"), str):
        allowed = re.findall(r"'([^']*)'", expected)
        if allowed:
            # The suggestion is one of ours, so nothing from the file is quoted.
            value = err.get("input")
            close = closest(value, allowed) if isinstance(value, str) else None
            hint = f"; did you mean {close}?" if close else ""
            return f"must be one of {', '.join(allowed)}{hint}"
    if kind == "string_pattern_mismatch":
        worded = _pattern(ctx.get("pattern"), err.get("input"))
        if worded is not None:
            return worded
    return err["msg"]


# Pydantic speaks of Python's types ("a valid tuple", "instance of LawfulBasis"); an author
# wrote YAML, so each is said in YAML's words with the two spellings YAML allows.
_LIST: Final = "must be a list: [a, b], or one '- item' per line"
_MAPPING: Final = "must be a mapping: {key: value}, or one 'key: value' per line"
_DATE: Final = "must be a date, year first (2026-04-01)"
_YAML_WORDS: Final = {
    "tuple_type": _LIST,
    "list_type": _LIST,
    "set_type": _LIST,
    "dict_type": _MAPPING,
    "model_type": _MAPPING,
    "model_attributes_type": _MAPPING,
    "date_type": _DATE,
    "date_parsing": _DATE,
    "date_from_datetime_parsing": _DATE,
    "date_from_datetime_inexact": _DATE,
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "string_type": "must be text",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
}
#: An ``int | str`` field (an agreement's ``version``) fails once per branch; the loader
#: says it once, with these words.
NUMBER_OR_TEXT: Final = "must be a number or text (2, or 2026-v2)"
#: So does a restriction's ``withhold: all | [fields]`` ("withhold: 5" was two problems).
UNION_WORDS: Final = {"withhold": "must be all, or a list: [a, b], or one '- item' per line"}


def key_not_text(err: ErrorDetails) -> bool:
    """Whether ``err`` is of a mapping key YAML read as a number, a date, true/false or null
    (``123:``): "Keys should be strings", or a ``dict[str, ...]``'s key "should be a valid
    string" (which read as if the value were wrong)."""
    kind, loc = err["type"], err["loc"]
    return kind == "invalid_key" or (kind == "string_type" and loc[-1:] == ("[key]",))


def text_key(spelt: str | None) -> str:
    """What to say of a key that is not text, ``spelt`` as the file has it (if known)."""
    if spelt is None:
        return "keys here must be text: put the key in quotes"
    return f"keys here must be text; write '{spelt}' in quotes"


def _typed(err: ErrorDetails) -> str | None:
    kind, ctx = err["type"], err.get("ctx") or {}
    if key_not_text(err):
        return text_key(None)
    if kind == "too_short" and isinstance(n := ctx.get("min_length"), int):
        return f"must have at least {n} item{'' if n == 1 else 's'}"
    return _YAML_WORDS.get(kind)


def _pattern(pattern: object, value: object) -> str | None:
    if pattern == PURPOSE_PATTERN:
        words = "must be lower-case letters, digits and _"
        if isinstance(value, str):
            # The usual slip is a hyphen or a capital: say the spelling that would do, and
            # only that (the value as written may run over lines).
            fixed = re.sub(r"[\s-]+", "_", value.strip()).lower()
            if re.fullmatch(PURPOSE_PATTERN, fixed):
                return f"{words}: {fixed}?"
        return f"{words}, starting with a letter, at most 64 (early_help, not early-help)"
    if pattern == FLAG_ID_PATTERN:
        return (
            "must be lower-case letters, digits, _ and -, starting with a letter or digit, "
            "at most 64 (da-repeat)"
        )
    return None


def _unknown_key(
    loc: tuple[int | str, ...], model: type[BaseModel] | None, filled: frozenset[str]
) -> str:
    key = loc[-1] if loc else None
    if isinstance(key, str):
        keys = _keys_at(model, loc[:-1])
        if len(loc) == 1:
            keys -= filled
        near = difflib.get_close_matches(key, sorted(keys), 1, _NEAR_MISS)
        if near:
            return f"unknown key; did you mean {near[0]!r}?"
    return "unknown key"


def _keys_at(model: type[BaseModel] | None, loc: tuple[int | str, ...]) -> set[str]:
    """The keys a file may use in the object at ``loc`` within ``model``: each field's alias
    where it has one (``from``), as the file spells it; none if it cannot be told."""
    current: list[type[BaseModel]] = [model] if model is not None else []
    for part in loc:
        if isinstance(part, int) or "[" in part:
            # An item of a list (its field named the model already), or pydantic's name
            # for a branch of a union or validator, which a file never spells.
            continue
        current = [
            inner
            for m in current
            for name, info in m.model_fields.items()
            if part in {name, info.alias}
            for inner in models_in(info.annotation)
        ]
    return {info.alias or name for m in current for name, info in m.model_fields.items()}
