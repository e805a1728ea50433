"""What the worker's hot path writes by hand, exactly as the models would write it.

**A decided record's data** (:class:`DecidedData`). The worker audits one ``decided``
record per candidate recipient, five or more per event, and their data is the biggest any
record carries. The general path dumps the decision to a dict (pydantic), checks that every
nested value is one the C encoder writes as JCS does, then encodes it: most of a decided
record's cost. Here the decision's own typed fields are written directly: the clause
references and lawful bases, the same few objects for every event, are encoded once (by
``rfc8785`` itself) and reused, and the time once per event. Whatever is not of the usual
shape (an integer beyond JCS's exact range, a key beyond ASCII, per-person scopes) goes
the general way, so the bytes are always ``rfc8785.dumps`` of the dumped decision.

**A delivery's payload** (:func:`delivery_payload`): the ``Delivery`` message as its
``model_dump(mode="json")`` would give it, built from the (validated) decision without
validating our own output field by field a second time.

**A sealed payload's bytes** (:func:`payload_json`): :func:`canonical_json`'s, written by
``orjson`` in a tenth of the time, for a payload that holds no float: the worker's
deliveries carry only what the event schemas allow, and those have no number that is not an
integer. orjson writes floats its own way (``0.00001`` for ``1e-05``, ``null`` for NaN), so
a float must never reach it; whatever else it would not write as the stdlib does (an integer
beyond 64 bits, a key that is not a string, a datetime or dataclass) goes the general way.

tests/unit/pipeline/test_encoding.py holds the first two to the models, byte for byte, over
arbitrary decisions; tests/unit/pipeline/test_payload_json.py holds the third to
:func:`canonical_json` over arbitrary values.
"""

from __future__ import annotations

import json.encoder
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Final

import orjson
import rfc8785
from pydantic import TypeAdapter

from broker._canonical import canonical_json
from broker.audit import PreEncoded, jcs_text
from broker.policy import Decision

__all__ = ["DecidedData", "delivery_payload", "payload_json"]

_str = json.encoder.encode_basestring  # escapes exactly as JCS does (broker/audit/_chain.py)
_SAFE_INT: Final = 2**53 - 1
# What a decided record leaves out of its data: the record itself carries both.
_EXCLUDE: Final = frozenset({"event_id", "recipient"})
# Fields whose JSON form is the attribute itself (a string, a boolean or None), answered
# without dumping the decision: the outbox reads ``outcome`` for its metrics.
_PLAIN: Final = frozenset(
    {
        "agreement_id", "agreement_version", "consent", "consent_rule", "event_type",
        "outcome", "override_grounds", "policy_version", "purpose", "reason",
        "recipient_kind", "review_required", "sender",
    }
)  # fmt: skip


class _Unusual(Exception):  # not an error: "use the general path"
    pass


def _opt(value: Any) -> str:
    # The C string encoder refuses (TypeError) anything but a string.
    return "null" if value is None else _str(value)


# Lists of names (clauses, fields, restrictions) recur from event to event: each is written
# once. Keyed by value; only names from the bundle are held, never anything about a person.
_CACHE_LIMIT: Final = 4096
_lists: dict[tuple[str, ...], str] = {}


def _strs(values: tuple[str, ...]) -> str:
    text = _lists.get(values)
    if text is None:
        text = "[" + ",".join(map(_str, values)) + "]"
        if len(_lists) >= _CACHE_LIMIT:
            _lists.clear()
        _lists[values] = text
    return text


def _int(value: Any) -> str:
    if type(value) is not int or not -_SAFE_INT <= value <= _SAFE_INT:
        raise _Unusual  # beyond what JCS writes exactly: the general path refuses it
    return str(value)


def _ints(values: tuple[int, ...]) -> str:
    return "[" + ",".join(map(_int, values)) + "]"


def _bool(value: bool) -> str:
    if type(value) is not bool:
        raise _Unusual
    return "true" if value else "false"


def _items(obj: dict[str, Any]) -> list[tuple[str, Any]]:
    """An object's members in JCS order."""
    if type(obj) is not dict:
        raise _Unusual
    # Keys here are field paths and roles, ASCII. Any other goes the general way: JCS sorts by
    # UTF-16 code unit (not code point), and pydantic's JSON dump rewrites a lone surrogate in
    # a key (where it keeps one in a value), so only the general path writes what it writes.
    if not "".join(obj).isascii():  # TypeError for a key that is not a string
        raise _Unusual
    return sorted(obj.items())


def _str_map(obj: dict[str, str]) -> str:
    if not obj:
        return "{}"
    return "{" + ",".join([f"{_str(k)}:{_str(v)}" for k, v in _items(obj)]) + "}"


def _int_map(obj: dict[str, int]) -> str:
    if not obj:
        return "{}"
    return "{" + ",".join([f"{_str(k)}:{_int(v)}" for k, v in _items(obj)]) + "}"


# Immutable (frozen) models met again and again, by identity: the clause references and
# lawful bases of the bundle in force. Each entry keeps its model alive, so an id is never
# reused while it is cached; a new bundle's models come in as the old ones stop being met.
_models: dict[int, tuple[object, str]] = {}


def _model(value: Any) -> str:
    if value is None:
        return "null"
    hit = _models.get(id(value))
    if hit is not None and hit[0] is value:
        return hit[1]
    text = rfc8785.dumps(value.model_dump(mode="json")).decode("utf-8")
    if len(_models) >= _CACHE_LIMIT:
        _models.clear()
    _models[id(value)] = (value, text)
    return text


# A time as pydantic writes it, worked out once per event: every decision of an event, and
# every delivery, carries the same datetime object.
_datetime_json = TypeAdapter(datetime).dump_python
_last_time: list[tuple[object, str]] = [(None, "")]


def _json_time(value: datetime) -> str:
    """``value`` as a pydantic model's ``model_dump(mode="json")`` writes a datetime."""
    last, text = _last_time[0]
    if value is last:
        return text
    text = str(_datetime_json(value, mode="json"))
    _last_time[0] = (value, text)
    return text


# JCS's member order (by UTF-16 code unit; all ASCII here), as ``_encode`` writes them.
_MEMBERS: Final = (
    "agreement_id", "agreement_version", "clause_ids", "consent", "consent_rule", "decided_at",
    "event_type", "fields_shared", "fields_withheld", "grounds", "lawful_basis", "outcome",
    "override_grounds", "policy_version", "purpose", "reason", "recipient_kind", "restrictions",
    "review_required", "sender", "subject_roles", "subject_scopes", "subjects", "transforms",
)  # fmt: skip
if tuple(sorted(set(Decision.model_fields) - _EXCLUDE, key=str.encode)) != _MEMBERS:
    raise RuntimeError("Decision's fields changed: update broker/pipeline/_encoding.py")


def _encode(d: Decision) -> str:
    """The JCS of the decision's dump; an exception where it cannot tell."""
    if d.subject_scopes:
        raise _Unusual  # per-person scopes: rare, and left to the general path
    s = _str
    return (
        f'{{"agreement_id":{_opt(d.agreement_id)},'
        f'"agreement_version":{_opt(d.agreement_version)},'
        f'"clause_ids":{_strs(d.clause_ids)},'
        f'"consent":{s(d.consent)},'
        f'"consent_rule":{_opt(d.consent_rule)},'
        f'"decided_at":{s(_json_time(d.decided_at))},'
        f'"event_type":{s(d.event_type)},'
        f'"fields_shared":{_strs(d.fields_shared)},'
        f'"fields_withheld":{_strs(d.fields_withheld)},'
        f'"grounds":[{",".join(map(_model, d.grounds))}],'
        f'"lawful_basis":{_model(d.lawful_basis)},'
        f'"outcome":{s(d.outcome)},'
        f'"override_grounds":{_opt(d.override_grounds)},'
        f'"policy_version":{s(d.policy_version)},'
        f'"purpose":{_opt(d.purpose)},'
        f'"reason":{_opt(d.reason)},'
        f'"recipient_kind":{s(d.recipient_kind)},'
        f'"restrictions":{_strs(d.restrictions)},'
        f'"review_required":{_bool(d.review_required)},'
        f'"sender":{s(d.sender)},'
        f'"subject_roles":{_int_map(d.subject_roles)},'
        f'"subject_scopes":[],'
        f'"subjects":{_ints(d.subjects)},'
        f'"transforms":{_str_map(d.transforms)}}}'
    )


class DecidedData(PreEncoded):
    """The data of a ``decided`` record: the decision less its event id and recipient.

    Reads as the dict ``decision.model_dump(mode="json", exclude={"event_id", "recipient"})``
    (made only if something reads more than the plain fields), and writes itself as the JCS
    of that dict.
    """

    __slots__ = ("_dumped", "decision")

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        self._dumped: dict[str, Any] | None = None

    def jcs(self) -> str:
        try:
            return _encode(self.decision)
        except (_Unusual, TypeError, ValueError):  # ValueError: rfc8785 refused a nested model
            return jcs_text(self._dump())  # which accepts, or refuses, as the chain always has

    def _dump(self) -> dict[str, Any]:
        if self._dumped is None:
            self._dumped = self.decision.model_dump(mode="json", exclude=set(_EXCLUDE))
        return self._dumped

    def __getitem__(self, key: str) -> Any:
        if key in _PLAIN:
            return getattr(self.decision, key)
        return self._dump()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dump())

    def __len__(self) -> int:
        return len(_MEMBERS)


def delivery_payload(event_id: str, decision: Decision, view: dict[str, Any]) -> dict[str, Any]:
    """``Delivery(...).model_dump(mode="json")`` for ``decision``'s recipient (tuples stand
    for lists: the canonical JSON is the same)."""
    basis = decision.lawful_basis
    return {
        "kind": "delivery",
        "event_id": event_id,
        "recipient": decision.recipient,
        "outcome": "shared_override" if decision.outcome == "shared_override" else "shared",
        "clauses": decision.clause_ids,
        "agreements": sorted({g.agreement_id for g in decision.grounds}),
        "purpose": decision.purpose or "",
        "lawful_basis": basis.model_dump(exclude_none=True) if basis else {},
        "policy_version": decision.policy_version,
        "decided_at": _json_time(decision.decided_at),
        "view": view,
    }


# Datetimes and dataclasses are handed to ``default``, which refuses them, so that the stdlib
# encoder (which refuses them too) has the last word on them.
_ORJSON: Final = (
    orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)


def payload_json(obj: object) -> bytes:
    """:func:`canonical_json`'s bytes for ``obj``, which must hold no ``float`` anywhere."""
    try:
        return orjson.dumps(obj, option=_ORJSON)
    except orjson.JSONEncodeError:  # not written as the stdlib would: the general way
        return canonical_json(obj)
