"""CEL conditions: compiled once at load, checked for unknown names, evaluated with memoisation.

What a condition sees (nothing that names a person):

- ``event``: ``type``, ``sender``, ``occurred_at`` (timestamp), ``reference``,
  ``need_level``, ``child_present``, ``summary``, ``child_voice``, ``categories``,
  ``service``, ``location``, ``safeguarding`` (``concern``, ``justification``) and
  ``subjects``: a list of ``{role, age, school_urn, postcode_district, has_nhs_number}``
  (``age`` in completed years at the decision time, or null).
- ``recipient``: ``id``, ``kind``, ``name``, ``localities``, ``urn``, ``status``.

CEL is pure, so a condition that reads only small routing attributes (type, sender,
need level, child present, categories, service) is memoised on those values: the hot path
of ``decide`` then evaluates no CEL at all for the common cases.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

import cel

from broker.events import ContactEvent, postcode_district

__all__ = [
    "EVENT_ATTRS",
    "RECIPIENT_ATTRS",
    "Condition",
    "EventActivation",
    "compile_condition",
]

EVENT_ATTRS: Final = frozenset(
    {
        "type",
        "sender",
        "occurred_at",
        "reference",
        "need_level",
        "child_present",
        "summary",
        "child_voice",
        "categories",
        "service",
        "location",
        "safeguarding",
        "subjects",
    }
)
RECIPIENT_ATTRS: Final = frozenset({"id", "kind", "name", "localities", "urn", "status"})
_MEMOISABLE: Final = frozenset(
    {"type", "sender", "need_level", "child_present", "categories", "service"}
)
_FUNCTIONS: Final = frozenset(
    {
        "size", "contains", "startsWith", "endsWith", "matches", "int", "uint", "double",
        "string", "bytes", "bool", "timestamp", "duration", "dyn", "type", "has", "all",
        "exists", "exists_one", "map", "filter", "getFullYear", "getMonth", "getDate",
        "getDayOfMonth", "getDayOfWeek", "getDayOfYear", "getHours", "getMinutes",
        "getSeconds", "getMilliseconds",
    }
)  # fmt: skip
_STRINGS = re.compile(
    r"""[rR]?(?:'''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*")""", re.DOTALL
)
_BOUND = re.compile(r"\.\s*(?:all|exists_one|exists|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,")
_ATTR = re.compile(r"(?<![\w.])(event|recipient)\s*\.\s*([A-Za-z_]\w*)")
_ROOT = re.compile(r"(?<![\w.])(event|recipient)(?!\w)")
_MEMO_LIMIT: Final = 4096


class Condition:
    """A compiled CEL condition and what it reads."""

    __slots__ = ("_memo", "event_attrs", "memoisable", "program", "reads_recipient", "source")

    def __init__(
        self, source: str, program: Any, event_attrs: frozenset[str], reads_recipient: bool
    ) -> None:
        self.source = source
        self.program = program
        self.event_attrs = tuple(sorted(event_attrs))
        self.reads_recipient = reads_recipient
        self.memoisable = event_attrs <= _MEMOISABLE
        self._memo: dict[tuple[Any, ...], bool | None] = {}

    def evaluate(self, act: EventActivation, recipient: Mapping[str, Any] | None) -> bool | None:
        """True or False, or None when evaluation failed (the caller decides the safe side)."""
        key: tuple[Any, ...] | None = None
        if self.memoisable:
            key = act.memo_key(self.event_attrs)
            if self.reads_recipient:
                key = (*key, recipient["id"] if recipient else None)
            hit = self._memo.get(key, _MISS)
            if hit is not _MISS:
                return hit  # type: ignore[return-value]  # _MISS is excluded above
        result = self._run(act, recipient)
        if key is not None:
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            self._memo[key] = result
        return result

    def _run(self, act: EventActivation, recipient: Mapping[str, Any] | None) -> bool | None:
        try:
            if self.reads_recipient:
                value = self.program.execute(
                    {"event": act.cel_event(), "recipient": dict(recipient or {})}
                )
            else:
                value = self.program.execute(act.context())
        except Exception:  # noqa: BLE001  # any CEL runtime failure (type mismatch, missing key) is "could not decide"
            return None
        return value if isinstance(value, bool) else None


_MISS: Final = object()


def _names(program: Any, source: str) -> tuple[set[str], bool, list[str]]:
    """The event attributes read, whether the recipient is read, and unknown-name problems."""
    problems: list[str] = []
    bare = _STRINGS.sub("''", source)
    bound = set(_BOUND.findall(bare))
    variables = program.variables()
    problems.extend(
        f"CEL refers to unknown name {name!r} (known: event, recipient)"
        for name in variables
        if name not in {"event", "recipient"} and name not in bound
    )
    event_attrs: set[str] = set()
    reads_recipient = "recipient" in variables
    attrs = _ATTR.findall(bare)
    if len(_ROOT.findall(bare)) != len(attrs):
        # event['x'], (event).x, size(event): a field read that way escapes both the
        # unknown-field check and the memo key, so a restriction could be skipped.
        problems.append("CEL must read fields as event.<field> or recipient.<field>")
    for root, attr in attrs:
        known = EVENT_ATTRS if root == "event" else RECIPIENT_ATTRS
        if attr not in known:
            problems.append(f"CEL refers to unknown field {root}.{attr}")
        elif root == "event":
            event_attrs.add(attr)
    problems.extend(
        f"CEL calls unknown function {fn!r}"
        for fn in program.functions()
        if fn[:1] not in {"_", "@", "!"} and fn not in _FUNCTIONS
    )
    return event_attrs, reads_recipient, problems


def compile_condition(source: str) -> tuple[Condition | None, list[str]]:
    """Compile ``source``; return the condition, or None and what is wrong with it."""
    try:
        program = cel.compile(source)
    except Exception as exc:  # noqa: BLE001  # the binding raises ValueError, or others for odd input
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        detail = first.split(": ERROR: ", 1)[-1]
        return None, [f"CEL does not compile: {detail}"]
    event_attrs, reads_recipient, problems = _names(program, source)
    if problems:
        return None, problems
    return Condition(source, program, frozenset(event_attrs), reads_recipient), []


def _age(dob: Any, at: datetime) -> int | None:
    if dob is None:
        return None
    today = at.astimezone(UTC).date()
    return int(today.year - dob.year - ((today.month, today.day) < (dob.month, dob.day)))


class EventActivation:
    """The CEL view of one event at one decision time, built lazily and at most once."""

    __slots__ = ("_cel_event", "_context", "_memo_values", "at", "event")

    def __init__(self, event: ContactEvent, at: datetime) -> None:
        self.event = event
        self.at = at
        self._cel_event: dict[str, Any] | None = None
        self._context: Any = None
        self._memo_values: dict[str, Any] = {}

    def memo_key(self, attrs: tuple[str, ...]) -> tuple[Any, ...]:
        values = self._memo_values
        out = []
        for attr in attrs:
            if attr not in values:
                raw = getattr(self.event, attr)
                values[attr] = tuple(raw) if isinstance(raw, tuple | list) else raw
            out.append(values[attr])
        return tuple(out)

    def cel_event(self) -> dict[str, Any]:
        if self._cel_event is None:
            ev = self.event
            self._cel_event = {
                "type": ev.type,
                "sender": ev.sender,
                "occurred_at": ev.occurred_at,
                "reference": ev.reference,
                "need_level": ev.need_level,
                "child_present": ev.child_present,
                "summary": ev.summary,
                "child_voice": ev.child_voice,
                "categories": list(ev.categories),
                "service": ev.service,
                "location": ev.location,
                "safeguarding": {
                    "concern": ev.safeguarding.concern,
                    "justification": ev.safeguarding.justification,
                },
                "subjects": [
                    {
                        "role": s.role,
                        "age": _age(s.dob, self.at),
                        "school_urn": s.school_urn,
                        "postcode_district": postcode_district(s.postcode) if s.postcode else None,
                        "has_nhs_number": s.nhs_number is not None,
                    }
                    for s in ev.subjects
                ],
            }
        return self._cel_event

    def context(self) -> Any:
        if self._context is None:
            self._context = cel.Context({"event": self.cel_event()})
        return self._context


def probe_activation() -> tuple[dict[str, Any], dict[str, Any]]:
    """A fully populated, entirely fictional event and recipient for load-time probing."""
    event = {
        "type": "police.domestic_incident",
        "sender": "probe",
        "occurred_at": datetime(2026, 1, 1, tzinfo=UTC),
        "reference": "PROBE",
        "need_level": 3,
        "child_present": True,
        "summary": "probe",
        "child_voice": "probe",
        "categories": ["probe"],
        "service": "probe",
        "location": "probe",
        "safeguarding": {"concern": False, "justification": "probe"},
        "subjects": [
            {
                "role": "child",
                "age": 7,
                "school_urn": "100000",
                "postcode_district": "ZZ1",
                "has_nhs_number": True,
            }
        ],
    }
    recipient = {
        "id": "probe",
        "kind": "hub",
        "name": "probe",
        "localities": ["ZZ1"],
        "urn": "100000",
        "status": "active",
    }
    return event, recipient


def probe(condition: Condition) -> str | None:
    """Run the condition once on a fictional event: catches unknown functions and non-booleans."""
    event, recipient = probe_activation()
    try:
        value = condition.program.execute({"event": event, "recipient": recipient})
    except RuntimeError as exc:
        if "Undefined" in str(exc):
            return "CEL refers to something undefined (unknown function or name)"
        return None
    except Exception:  # noqa: BLE001  # type errors may depend on real data; not a load error
        return None
    if not isinstance(value, bool):
        return "CEL condition does not evaluate to true or false"
    return None
