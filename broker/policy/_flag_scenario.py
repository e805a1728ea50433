"""Flag scenarios (docs/policy-language.md, "Flag scenarios"): events as the co-ordinating
team received them, in arrival order, and exactly the flags expected, in the order raised.

Told apart from decision scenarios by ``flag_events``. Parsing lives here with the other
scenario files; running needs the desk's flag engine, which the caller passes in (the policy
layer sits below the desk).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from broker.errors import ScenarioInvalid
from broker.events import FIELD_PATHS, ROLES

__all__ = ["ExpectedFlag", "FlagRunner", "FlagScenario", "parse_flag_scenario"]

_KEYS = frozenset({"name", "policies", "flag_events", "expect_flags", "description"})
_CHILD_KEYS = ("nhs_number", "given_name", "family_name", "dob")


@dataclass(frozen=True)
class ExpectedFlag:
    rule: str
    # The child as a scenario names it: {"nhs_number": ...} or given/family name and dob.
    child: dict[str, str]
    event_ids: tuple[str, ...]

    def label(self) -> str:
        return " ".join(self.child[k] for k in _CHILD_KEYS if k in self.child)


@dataclass(frozen=True)
class FlagScenario:
    name: str
    file: Path
    position: int
    policies: Path | None
    events: tuple[Any, ...]
    expect: tuple[ExpectedFlag, ...]


# (scenario, policy loader) → differences; supplied by the desk (broker.desk).
FlagRunner = Callable[[FlagScenario, Callable[[Path | None], Any]], list[str]]


def _expected(raw: Any, where: str, i: int) -> ExpectedFlag:
    problem = (
        f"{where}: expect_flags[{i}] must be {{rule, nhs_number, event_ids}} (or given_name, "
        "family_name and dob instead of nhs_number)"
    )
    if not isinstance(raw, dict) or not isinstance(raw.get("rule"), str):
        raise ScenarioInvalid(problem)
    ids = raw.get("event_ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(e, str) for e in ids):
        raise ScenarioInvalid(problem)
    child = {k: str(raw[k]) for k in _CHILD_KEYS if raw.get(k) is not None}
    named = "nhs_number" in child or {"given_name", "family_name", "dob"} <= set(child)
    if set(raw) - {"rule", "event_ids", *_CHILD_KEYS} or not named:
        raise ScenarioInvalid(problem)
    return ExpectedFlag(raw["rule"], child, tuple(ids))


# What a team's view of an event can hold (broker/policy/_redact.py): the fields the
# schema's field paths name, in full or transformed, the event's own ids, and the
# ``sharing`` block every delivered view carries (the flag engine reads none of it, but a
# view pasted as received must be accepted).
_EVENT_KEYS = frozenset(
    {"event_id", "type", "sender", "occurred_at", "subjects", "sharing"}
    | {p.removeprefix("event.") for p in FIELD_PATHS if p.startswith("event.")}
    | {f"{p.removeprefix('event.')}_pseudonym" for p in FIELD_PATHS if p.startswith("event.")}
)
_SUBJECT_KEYS = frozenset(
    {"role", "given_name", "family_name", "initials", "dob", "age_band", "year_of_birth",
     "nhs_number", "address", "postcode", "postcode_district", "school_urn"}
    | {f"{p.removeprefix('subject.')}_pseudonym" for p in FIELD_PATHS
       if p.startswith("subject.")}
)  # fmt: skip


def _check_event(event: dict[str, Any], where: str) -> None:
    """A misspelt key (``catgories``) or role would drop what it holds without a word, and a
    scenario expecting no flag would pass: refused, naming the key, as an event's are."""
    if unknown := sorted(map(str, set(event) - _EVENT_KEYS)):
        raise ScenarioInvalid(f"{where}: unknown key(s) {', '.join(unknown)}")
    subjects = event.get("subjects", [])
    if not isinstance(subjects, list) or not all(isinstance(s, dict) for s in subjects):
        raise ScenarioInvalid(f"{where}: 'subjects' must be a list of mappings")
    for n, subject in enumerate(subjects):
        if unknown := sorted(map(str, set(subject) - _SUBJECT_KEYS)):
            raise ScenarioInvalid(f"{where}.subjects[{n}]: unknown key(s) {', '.join(unknown)}")
        if subject.get("role") not in ROLES:
            raise ScenarioInvalid(f"{where}.subjects[{n}]: role must be one of {', '.join(ROLES)}")
        # Null: a field shared but not held (a view gives a shared ``postcode`` as null).
        if not all(isinstance(v, str | date | None) for k, v in subject.items() if k != "role"):
            raise ScenarioInvalid(f"{where}.subjects[{n}]: values must be strings, dates or null")


def parse_flag_scenario(raw: dict[str, Any], file: Path, position: int) -> FlagScenario:
    where = f"{file}: scenario {position + 1}"
    unknown = set(raw) - _KEYS
    if unknown:
        raise ScenarioInvalid(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ScenarioInvalid(f"{where}: needs a name")
    where = f"{file}: {name!r}"
    events = raw.get("flag_events")
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise ScenarioInvalid(f"{where}: 'flag_events' must be a list of events (mappings)")
    for i, event in enumerate(events):
        _check_event(event, f"{where}: flag_events[{i}]")
    expect = raw.get("expect_flags")
    if expect is None:
        raise ScenarioInvalid(f"{where}: needs 'expect_flags' (a list; [] for no flag)")
    if not isinstance(expect, list):
        raise ScenarioInvalid(f"{where}: 'expect_flags' must be a list")
    policies = raw.get("policies")
    if policies is not None and not isinstance(policies, str):
        raise ScenarioInvalid(f"{where}: 'policies' must be a folder path")
    return FlagScenario(
        name=name,
        file=file,
        position=position,
        policies=(file.parent / policies).resolve() if policies else None,
        events=tuple(events),
        expect=tuple(_expected(e, where, i) for i, e in enumerate(expect)),
    )
