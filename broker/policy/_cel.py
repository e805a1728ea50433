"""CEL conditions: compiled once at load, checked for unknown names and type mistakes, evaluated
with memoisation.

What a condition sees (nothing that names a person):

- ``event``: ``type``, ``sender``, ``occurred_at`` (timestamp), ``reference``,
  ``need_level``, ``child_present``, ``summary``, ``child_voice``, ``categories``,
  ``service``, ``location``, ``safeguarding`` (``concern``, ``justification``) and
  ``subjects``: a list of ``{role, age, school_urn, postcode_district, has_nhs_number}``
  (``age`` in completed years at the decision time, or null).
- ``recipient``: ``id``, ``kind``, ``name``, ``localities``, ``urn``, ``status``.

CEL is pure, so a condition that reads only small routing attributes (type, sender,
need level, child present, categories, service) is memoised on those values: the hot path
of ``decide`` then evaluates no CEL at all for the common cases. A condition is given only
what it can observe of the event (``_cel_reads``): converting the event into CEL is most of
what evaluating costs. One that observes no free text (subjects' ages, roles and districts,
say, and need level) is memoised on exactly what it observes; the rest share one CEL
context per decision.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import cel

from broker.events import ContactEvent, Subject, postcode_district
from broker.policy._cel_reads import (
    ALL,
    EVENT_ATTRS,
    SAFEGUARDING_ATTRS,
    SUBJECT_ATTRS,
    Reads,
    blank_strings,
    reads_of,
)
from broker.policy._cel_selects import unknown_selects
from broker.policy._cel_types import kind_problems
from broker.policy._transform import age_in_years

__all__ = [
    "EVENT_ATTRS",
    "RECIPIENT_ATTRS",
    "Condition",
    "EventActivation",
    "compile_condition",
]

RECIPIENT_ATTRS: Final = frozenset({"id", "kind", "name", "localities", "urn", "status"})
_MEMOISABLE: Final = frozenset(
    {"type", "sender", "need_level", "child_present", "categories", "service", "outcome"}
)
# Memoised on what they observe when that is only these: no free text, nothing near unique.
_VIEW_KEYED: Final = _MEMOISABLE | {"subjects", "safeguarding"}
_FUNCTIONS: Final = frozenset(
    {
        "size", "contains", "startsWith", "endsWith", "matches", "int", "uint", "double",
        "string", "bytes", "bool", "timestamp", "duration", "dyn", "type", "has", "all",
        "exists", "exists_one", "map", "filter", "getFullYear", "getMonth", "getDate",
        "getDayOfMonth", "getDayOfWeek", "getDayOfYear", "getHours", "getMinutes",
        "getSeconds", "getMilliseconds",
        "-_",  # unary minus: CEL names its operators, most from "_" or "!", this one so
    }
)  # fmt: skip
_BOUND = re.compile(r"\.\s*(?:all|exists_one|exists|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,")
_ATTR = re.compile(r"(?<![\w.])(event|recipient)\s*\.\s*([A-Za-z_]\w*)")
_ROOT = re.compile(r"(?<![\w.])(event|recipient)(?!\w)")
_MEMO_LIMIT: Final = 4096


class Condition:
    """A compiled CEL condition and what it reads."""

    __slots__ = (
        "_memo",
        "event_attrs",
        "memoisable",
        "program",
        "reads_recipient",
        "source",
        "view",
        "view_keyed",
    )

    def __init__(
        self,
        source: str,
        program: Any,
        event_attrs: frozenset[str],
        reads_recipient: bool,
        view: Reads | None = None,
    ) -> None:
        self.source = source
        self.program = program
        self.event_attrs = tuple(sorted(event_attrs))
        self.reads_recipient = reads_recipient
        # What it can observe (everything it names, unless shown otherwise).
        self.view = view or Reads(event_attrs, SUBJECT_ATTRS, SAFEGUARDING_ATTRS)
        self.memoisable = event_attrs <= _MEMOISABLE
        self.view_keyed = (
            not self.memoisable
            and event_attrs <= _VIEW_KEYED
            and "justification" not in self.view.safeguarding
        )
        self._memo: dict[tuple[Any, ...], bool | None] = {}

    def evaluate(self, act: EventActivation, recipient: Mapping[str, Any] | None) -> bool | None:
        """True or False, or None when evaluation failed (the caller decides the safe side)."""
        key: tuple[Any, ...] | None = None
        if self.memoisable or self.view_keyed:
            if self.memoisable:
                key = act.memo_key(self.event_attrs)
            else:
                key = act.view_key(self.event_attrs, self.view)
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
                event = act.cel_event(self.view)
                value = self.program.execute({"event": event, "recipient": dict(recipient or {})})
            else:
                value = self.program.execute(act.context(self.view))
        except Exception:  # noqa: BLE001  # any CEL runtime failure (type mismatch, missing key) is "could not decide"
            return None
        return value if isinstance(value, bool) else None


_MISS: Final = object()


def _names(program: Any, source: str) -> tuple[set[str], bool, list[str]]:
    """The event attributes read, whether the recipient is read, and unknown-name problems."""
    problems: list[str] = []
    bare = blank_strings(source)
    bound = set(_BOUND.findall(bare))
    variables = program.variables()
    if not _same_program(program, bare):
        # Every check below, and the memo key, reads ``bare``: code lost in blanking would be
        # reads nobody checks.
        return set(), False, ["CEL's strings and comments cannot be told apart from its code"]
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
    problems.extend(unknown_selects(bare))
    # The same kind of mistake, followed through macros the text alone cannot place, and
    # operations on kinds CEL does not combine.
    problems.extend(p for p in kind_problems(source) if p not in problems)
    problems.extend(
        f"CEL calls unknown function {fn!r}"
        for fn in program.functions()
        if fn[:1] not in {"_", "@", "!"} and fn not in _FUNCTIONS
    )
    return event_attrs, reads_recipient, problems


def _same_program(program: Any, bare: str) -> bool:
    """Whether ``bare`` (strings and comments blanked) names what ``program`` names."""
    try:
        blanked = cel.compile(bare)
    except Exception:  # noqa: BLE001  # as compile_condition: any failure is "no"
        return False
    return (sorted(blanked.variables()), sorted(blanked.functions())) == (
        sorted(program.variables()),
        sorted(program.functions()),
    )


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
    attrs = frozenset(event_attrs)
    view = reads_of(blank_strings(source), attrs)
    return Condition(source, program, attrs, reads_recipient, view), []


def _age(dob: Any, at: datetime) -> int | None:
    if dob is None:
        return None
    return age_in_years(dob, at.astimezone(UTC).date())


# A subject as CEL sees it: no names, no identifiers, an age rather than a date of birth.
_SUBJECT_VIEW: Final[tuple[tuple[str, Callable[[Subject, datetime], Any]], ...]] = (
    ("role", lambda s, _: s.role),
    ("age", lambda s, at: _age(s.dob, at)),
    ("school_urn", lambda s, _: s.school_urn),
    ("postcode_district", lambda s, _: postcode_district(s.postcode) if s.postcode else None),
    ("has_nhs_number", lambda s, _: s.nhs_number is not None),
)
if {name for name, _ in _SUBJECT_VIEW} != SUBJECT_ATTRS:
    raise RuntimeError("_SUBJECT_VIEW and SUBJECT_ATTRS disagree")


class EventActivation:
    """The CEL view of one event at one decision time, built lazily and at most once.

    ``shared``: what the conditions that share a context may observe (by default, all
    of the event). They share one CEL context of just that; one that observes beyond it (a
    caller that said too little) gets a context of its own, never a view lacking a read.
    """

    __slots__ = ("_context", "_memo_values", "_subject_views", "_values", "at", "event", "shared")

    def __init__(self, event: ContactEvent, at: datetime, shared: Reads = ALL) -> None:
        self.event = event
        self.at = at
        self.shared = shared
        self._values: dict[str, Any] = {}
        self._subject_views: dict[frozenset[str], list[dict[str, Any]]] = {}
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

    def view_key(self, attrs: tuple[str, ...], view: Reads) -> tuple[Any, ...]:
        """What ``view`` shows of ``attrs`` (sorted), as a hashable key."""
        out: list[Any] = []
        for attr in attrs:
            if attr == "subjects":
                out.append(tuple(tuple(s.items()) for s in self._subjects(view.subject)))
            elif attr == "safeguarding":
                out.append(tuple(self._safeguarding(view.safeguarding).items()))
            else:
                out.extend(self.memo_key((attr,)))
        return tuple(out)

    def cel_event(self, view: Reads = ALL) -> dict[str, Any]:
        """The event as CEL sees it, as much as ``view`` observes."""
        values = self._values
        out: dict[str, Any] = {}
        for attr in view.attrs:
            if attr == "subjects":
                out[attr] = self._subjects(view.subject)
            elif attr == "safeguarding":
                out[attr] = self._safeguarding(view.safeguarding)
            else:
                if attr not in values:
                    values[attr] = self._cel_value(attr)
                out[attr] = values[attr]
        return out

    def context(self, view: Reads = ALL) -> Any:
        """A CEL context holding at least what ``view`` observes."""
        if not self.shared.covers(view):
            return cel.Context({"event": self.cel_event(view)})
        if self._context is None:
            self._context = cel.Context({"event": self.cel_event(self.shared)})
        return self._context

    def _subjects(self, fields: frozenset[str]) -> list[dict[str, Any]]:
        found = self._subject_views.get(fields)
        if found is None:
            at = self.at
            views = [(name, view) for name, view in _SUBJECT_VIEW if name in fields]
            found = [{name: view(s, at) for name, view in views} for s in self.event.subjects]
            self._subject_views[fields] = found
        return found

    def _safeguarding(self, fields: frozenset[str]) -> dict[str, Any]:
        sg = self.event.safeguarding
        # The judgement the override makes (Safeguarding.justified), not the raw flag: a
        # clause written "need level 4 or a concern" (consent not_required) would otherwise
        # share on a concern whose justification nobody can read, while the sender is told
        # it counts for nothing. Invisible characters only read as no justification.
        whole = {"concern": sg.justified, "justification": sg.readable_justification}
        return {name: value for name, value in whole.items() if name in fields}

    def _cel_value(self, attr: str) -> Any:
        ev = self.event
        if attr == "categories":
            return list(ev.categories)
        if attr not in EVENT_ATTRS:
            raise KeyError(attr)  # never a value a condition was not meant to see
        return getattr(ev, attr)


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
        "outcome": "closed",
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


def _probes() -> tuple[tuple[dict[str, Any], dict[str, Any]], ...]:
    """Well-formed fictional events and recipients, every field present and of its declared
    type, varied so that each side of a boolean test is taken by one of them."""
    event, recipient = probe_activation()
    child = event["subjects"][0]
    quiet = {
        **event,
        "need_level": 1,
        "child_present": False,
        "categories": [],
        "outcome": "declined",
        "safeguarding": {"concern": True, "justification": "probe"},
        "subjects": [
            {**child, "age": 15, "has_nhs_number": False},
            {**child, "role": "parent", "age": 34, "postcode_district": "ZZ9"},
        ],
    }
    busy = {**event, "need_level": 4, "subjects": [child, *quiet["subjects"]]}
    school = {**recipient, "kind": "school", "localities": [], "status": "suspended"}
    agency = {**recipient, "kind": "agency", "localities": ["ZZ1", "ZZ9"]}
    return (event, recipient), (quiet, school), (busy, agency)


_PROBES: Final = _probes()


def probe(condition: Condition) -> str | None:  # noqa: PLR0911  # one return per outcome
    """Run the condition on fictional events: catches unknown functions and fields the source
    check cannot place, non-booleans, and type errors that no well-formed event escapes."""
    (event, recipient), *others = _PROBES
    try:
        value = condition.program.execute({"event": event, "recipient": recipient})
    except KeyError as exc:
        return _unknown_key(condition.source, exc)
    except RuntimeError as exc:
        if "Undefined" in str(exc):
            return "CEL refers to something undefined (unknown function or name)"
        return None
    except TypeError:
        return _fails_on_types(condition, others)
    except Exception:  # noqa: BLE001  # other failures may depend on real data; not a load error
        return None
    if not isinstance(value, bool):
        return "CEL condition does not evaluate to true or false"
    return None


def _fails_on_types(
    condition: Condition, probes: list[tuple[dict[str, Any], dict[str, Any]]]
) -> str | None:
    """A type error (the binding's "no such overload") on every probe, each well-formed and
    free of nulls, is the condition's own; one it escapes on some may be the data's."""
    for event, recipient in probes:
        try:
            condition.program.execute({"event": event, "recipient": recipient})
        except TypeError:
            continue
        except Exception:  # noqa: BLE001  # failing otherwise here: not shown to be the condition's
            return None
        return None
    return "CEL fails on every well-formed event (operands of types it does not combine)"


def _unknown_key(source: str, exc: KeyError) -> str | None:
    """The probe event holds every field a condition may read, so a missing key that the
    code itself names (``.key``, or ``['key']``) is one no real event has either; a key from
    data (``{...}[recipient.id]``) may be there in a real one."""
    key = exc.args[0] if exc.args else None
    if not isinstance(key, str):
        return None
    name = re.escape(key)
    if re.search(rf"\.\s*{name}(?!\w)", blank_strings(source)) or re.search(
        rf"""\[\s*(['"]){name}\1\s*\]""", source
    ):
        return f"CEL refers to unknown field {key!r}"
    return None
