"""The flag engine: flags.yaml's rules over each child's window of records, pure and replayable.

The brief's semantics (docs/policy-language.md, "Flag rules"). For each record the team
receives, for each child subject in it (subject order; keyed by :func:`child_key`), the record
joins that child's records; then each rule (file order) looks at the records whose
``occurred_at`` lies in (t - window, t], t the new record's ``occurred_at``, and fires when
its ``when`` holds and no flag for the same (rule, child) fired at a t' in (t - window, t].
The flag names the records in the window in ``occurred_at`` order, ties in arrival order.

State is one small JSON value per child (:data:`ChildState`), so the faust service keeps it
in a changelog-backed table keyed by child key, and the same code runs in scenarios and
tests. A record whose event id the child's state already holds is ignored: reprocessing
after a restart raises nothing twice. State keeps the records and fire times of the last
twice the longest window behind the newest ``occurred_at`` seen for the child: exact for
any record that arrives less than the longest window late (a record later than that is
still evaluated, against what is kept). The ids of records trimmed away stay (ids only, with
the time they went), so a redelivery is still recognised for as long as Kafka could bring one:
the flag service forgets them after the withdrawn-id markers' keep (:mod:`._gone`; the engine
keeps them for good unless given a keep). That time, from the engine's clock, is the only
thing in a state that is not a function of the records.

Household rules (those naming ``household``) are evaluated in a second step, over the
household's state (``_household``): :meth:`FlagEngine.apply` returns what that step needs,
and :meth:`FlagEngine.process` runs both steps in one go (the faust service runs the second
on the household's partition).

A child whose key changed when names began to be compared as the broker compares them
(2026-12-05) brings its old key with each record (``Placement.legacy``): the window state kept
under that key joins the child's (:meth:`FlagEngine.adopt`: its records, the times its rules
fired and the ids it has seen), so the upgrade neither loses a window nor raises a flag twice.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from broker.desk import _flag_fires as fires
from broker.desk._flag import Flag, child_keys, flag_id, household_key
from broker.desk._gone import STATE_VERSION, Forget, dated, forget, went
from broker.desk._household import (
    HouseholdMessage,
    apply_household,
    left_household,
    withdraw_household,
)
from broker.desk._window import ID, SEQ, T, aggregates, micros, time_of
from broker.errors import EventInvalid
from broker.policy import CompiledFlagRule

__all__ = ["Applied", "ChildState", "FlagEngine", "Placement", "WindowRecord", "window_record"]

#: ``{"v": 2, "seq": next arrival number, "newest": µs or None,
#: "recs": [[occurred µs, arrival, event id, sender, type, need, [categories]], ...],
#: "fired": {rule id: [µs, ...]}, "on": {rule id: {"<µs>": [event id, ...]}},
#: "gone": {event id: seconds when it went, ...},
#: "hh": household key, "adopted": {legacy key: its state's "seq" when adopted}}``:
#: JSON-ready, so a faust table stores it as is. ``on``: the records each fire was raised on
#: not yet withdrawn (:mod:`._flag_fires`; absent before 2026-12-07); ``hh``: where the
#: child was last placed; ``adopted``: see ``adopt``. Format 1 (``"v": 1``) held ``gone``
#: as a list of ids: it is read as it is and written as format 2 (:mod:`._gone`).
ChildState = dict[str, Any]
#: In :meth:`FlagEngine.process`'s mapping, a household's state is under this + its key.
HOUSEHOLD_PREFIX = "household:"


@dataclass(frozen=True, slots=True)
class WindowRecord:
    """What a rule can see of one delivered record (no person in it)."""

    event_id: str
    occurred_at: datetime
    sender: str
    type: str
    need_level: int
    categories: tuple[str, ...]


def _fail(message: str) -> EventInvalid:
    return EventInvalid([("view", message)])


def window_record(view: Mapping[str, Any]) -> WindowRecord:
    """The window record of a delivered view; ``EventInvalid`` (no values quoted) if it has
    not the fields every view carries. Need level and categories count only if shared."""
    event_id, sender, etype = (view.get(k) for k in ("event_id", "sender", "type"))
    if not all(isinstance(v, str) and v for v in (event_id, sender, etype)):
        raise _fail("event_id, sender and type must be non-empty strings")
    occurred = view.get("occurred_at")
    if isinstance(occurred, str):
        try:
            occurred = datetime.fromisoformat(occurred)
        except ValueError:
            raise _fail("occurred_at is not an ISO 8601 date-time") from None
    if not isinstance(occurred, datetime) or occurred.tzinfo is None:
        raise _fail("occurred_at must be a date-time with a timezone")
    need = view.get("need_level")
    if need is None:
        need = 0
    if not isinstance(need, int) or isinstance(need, bool):
        raise _fail("need_level must be an integer")
    cats = view.get("categories") or []
    if not isinstance(cats, list | tuple) or not all(isinstance(c, str) for c in cats):
        raise _fail("categories must be a list of strings")
    return WindowRecord(str(event_id), occurred, str(sender), str(etype), need, tuple(cats))


def _copy(state: ChildState, when: Forget) -> ChildState:
    """A copy ``apply`` may change, in format 2, without the gone ids older than the keep:
    records are never changed in place, fire lists are."""
    return {
        **state,
        "v": STATE_VERSION,
        "recs": list(state["recs"]),
        "fired": {rule: list(times) for rule, times in state["fired"].items()},
        "on": fires.copied(state.get("on")),
        "gone": forget(dated(state, when.now), when),
    }


def empty_state() -> ChildState:
    return {"v": STATE_VERSION, "seq": 0, "newest": None, "recs": [], "fired": {}, "on": {},
            "gone": {}}  # fmt: skip


class Placement(NamedTuple):
    """A child subject of a view: its key, the household its view gives (or None) and the
    view's children at that address (itself among them)."""

    child: str
    household: str | None
    residents: tuple[str, ...]
    # The child's key before 2026-12-05 where it differs (``ChildKeys.legacy``).
    legacy: str | None = None
    # (legacy key, key) of those residents that have a legacy key: the household's records
    # from before name them by it.
    renamed: tuple[tuple[str, str], ...] = ()
    # Every child of the view, wherever it is placed: none of them is checked as a sibling
    # at this record (each is evaluated where its own placement sends it).
    named: tuple[str, ...] = ()


class Applied(NamedTuple):
    """A record applied to a child: the new state, the child rules' flags, what the
    household's step needs (None: no household rule, or no household known), and the
    household the record moved the child out of (None: it did not), whose step is told so
    that it no longer checks the child there as a sibling (``_household.left_household``)."""

    state: ChildState
    flags: list[Flag]
    household: HouseholdMessage | None
    left: str | None = None


class FlagEngine:
    """Raises ``party``'s flags under ``rules``; ``secret`` keys children (desk-linkage.key).
    ``clock`` (seconds) dates the ids a state keeps as gone; ``gone_keep`` says, when a state
    is written, how long they are kept (seconds; None, the default: for good).
    ``rule_failed`` is told (rule id, error type) each time a rule's ``when`` fails on a
    window (the rule does not fire there); None: each rule logs it (``CompiledFlagRule``)."""

    def __init__(
        self,
        rules: Sequence[CompiledFlagRule],
        party: str,
        secret: bytes,
        *,
        clock: Callable[[], float] = time.time,
        gone_keep: Callable[[], float | None] = lambda: None,
        rule_failed: Callable[[str, str], None] | None = None,
    ) -> None:
        self._clock = clock
        self._gone_keep = gone_keep
        self.rules = tuple(rules)
        if rule_failed is not None:
            self.rules = tuple(replace(r, failed=rule_failed) for r in self.rules)
        self.party = party
        self._secret = secret
        self.child_rules = tuple(r for r in self.rules if not r.household)
        self.household_rules = tuple(r for r in self.rules if r.household)
        longest = max((r.window for r in self.rules), default=timedelta(0))
        self._keep = 2 * longest // timedelta(microseconds=1)

    def children(self, view: Mapping[str, Any]) -> list[str]:
        """The keys of the view's child subjects, in subject order, each once."""
        return [p.child for p in self.placements(view)]

    def placements(self, view: Mapping[str, Any]) -> list[Placement]:
        """The view's child subjects, in subject order, each once, with their households."""
        found: dict[str, str | None] = {}
        legacy: dict[str, str] = {}
        subjects = view.get("subjects")
        for subject in subjects if isinstance(subjects, list | tuple) else ():
            if not isinstance(subject, Mapping) or subject.get("role") != "child":
                continue
            key, old = child_keys(self._secret, subject)
            if key is not None and key not in found:
                # Only household rules need the address: no hashing it otherwise.
                found[key] = household_key(self._secret, subject) if self.household_rules else None
                if old is not None:
                    legacy[key] = old
        places = []
        named = tuple(found)
        for c, h in found.items():
            residents = tuple(o for o, oh in found.items() if h is not None and oh == h) or (c,)
            renamed = tuple((legacy[o], o) for o in residents if o in legacy)
            places.append(Placement(c, h, residents, legacy.get(c), renamed, named))
        return places

    def process(
        self, view: Mapping[str, Any], states: MutableMapping[str, ChildState]
    ) -> list[Flag]:
        """Apply one delivered view to ``states`` (child key → state; a household's under
        ``HOUSEHOLD_PREFIX`` + its key), both steps; the flags raised."""
        record = window_record(view)
        flags: list[Flag] = []
        for place in self.placements(view):
            state = states.get(place.child)
            if place.legacy is not None:
                state = self.adopt(state, place.legacy, states.get(place.legacy))
            state, raised, message, left = self.apply(state, place, record)
            states[place.child] = state
            flags.extend(raised)
            if left is not None and (away := states.get(HOUSEHOLD_PREFIX + left)) is not None:
                states[HOUSEHOLD_PREFIX + left] = left_household(away, place.child)
            if message is not None:
                key = HOUSEHOLD_PREFIX + message.household
                house, raised = self.apply_household(states.get(key), message)
                states[key] = house
                flags.extend(raised)
        return flags

    def apply_household(
        self, state: ChildState | None, message: HouseholdMessage
    ) -> tuple[ChildState, list[Flag]]:
        """The household's step (``_household.apply_household``) under this engine's rules."""
        keep = timedelta(microseconds=self._keep)
        return apply_household(state, message, self.household_rules, party=self.party,
                               keep=keep, when=self.forgetting())  # fmt: skip

    def withdraw_household(self, state: ChildState, event_ids: set[str]) -> ChildState | None:
        """The household's state without the named records (``_household``); None when
        nothing changed."""
        return withdraw_household(state, event_ids, self.forgetting())

    def forgetting(self) -> Forget:
        """When a state written now dates its new gone ids, and which old ones it forgets."""
        return Forget(int(self._clock()), self._gone_keep())

    def adopt(
        self, state: ChildState | None, legacy: str, old: ChildState | None
    ) -> ChildState | None:
        """``state`` with ``old``, the state kept under the child's ``legacy`` key, merged in
        (neither is changed in place): the records of both (ids either has seen as gone stay
        gone), the fire times of both, so a rule that fired under the old key does not fire
        again within its window, and the ids both have seen. ``state`` as it is when ``old``
        has not changed since it was last adopted (nothing is written under a legacy key
        after the upgrade, so that is after the first time)."""
        if old is None or old is state:
            return state
        mine = state if state is not None else empty_state()
        if mine.get("adopted", {}).get(legacy) == old["seq"]:
            return state
        when = self.forgetting()
        gone = dated(mine, when.now)
        for event_id, t in dated(old, when.now).items():
            gone[event_id] = max(t, gone.get(event_id, t))  # the later: kept the longer
        dropped, seen = set(gone), set()  # all of them: none of their records comes back
        # In the order they went, as forget() reads them.
        gone = forget(dict(sorted(gone.items(), key=lambda item: item[1])), when)
        ranked = []
        # The old key's records arrived first: they go first among records of one time.
        for source, recs in enumerate((old["recs"], mine["recs"])):
            for r in recs:
                if r[ID] not in dropped and r[ID] not in seen:
                    seen.add(r[ID])
                    ranked.append((r[T], source, r[SEQ], r))
        ranked.sort(key=lambda x: x[:3])
        fired = {rule: list(times) for rule, times in mine["fired"].items()}
        for rule, times in old["fired"].items():
            fired[rule] = sorted({*fired.get(rule, ()), *times})
        newest = [n for n in (mine["newest"], old["newest"]) if n is not None]
        merged: ChildState = {
            **mine,
            "v": STATE_VERSION,
            "seq": len(ranked),
            "newest": max(newest) if newest else None,
            "recs": [[r[T], i, *r[SEQ + 1 :]] for i, (*_, r) in enumerate(ranked)],
            "fired": fired,
            "on": fires.merged(mine.get("on"), old.get("on")),
            "gone": gone,
            "adopted": {**mine.get("adopted", {}), legacy: old["seq"]},
        }
        if "hh" not in merged and old.get("hh") is not None:
            merged["hh"] = old["hh"]
        return merged

    def apply(self, state: ChildState | None, place: Placement, record: WindowRecord) -> Applied:
        """``record`` joins the child's state (not changed in place): the child rules' flags
        and the household step's message."""
        child = place.child
        if state is not None and (
            record.event_id in [r[ID] for r in state["recs"]]
            or record.event_id in state.get("gone", ())
        ):
            return Applied(state, [], None)  # seen: a redelivery or a restart's reprocessing
        when = self.forgetting()
        new = _copy(state, when) if state is not None else empty_state()
        recs: list[list[Any]] = new["recs"]
        t = micros(record.occurred_at)
        seq = new["seq"]
        new["seq"] = seq + 1
        bisect.insort(recs, [t, seq, record.event_id, record.sender, record.type,
                             record.need_level, sorted(set(record.categories))])  # fmt: skip
        flags: list[Flag] = []
        for rule in self.child_rules:
            window = self._window(recs, rule, t)
            fired: list[int] = new["fired"].setdefault(rule.id, [])
            width = rule.window // timedelta(microseconds=1)
            if any(t - width < f <= t for f in fired) or not rule.holds(aggregates(window)):
                continue
            fired.append(t)
            fires.note(new["on"], rule.id, t, (r[ID] for r in window))
            flags.append(self._flag(rule, child, record, window))
        left = None
        if place.household is not None:
            if self.household_rules and new.get("hh") not in (None, place.household):
                left = new["hh"]
            new["hh"] = place.household
        message = None
        household = new.get("hh")
        if self.household_rules and household is not None:
            own = place.residents if place.household is not None else (child,)
            # Every key the household's older records may name these children by.
            renamed = {old: key for old, key in place.renamed if key in own}
            renamed.update(dict.fromkeys(new.get("adopted", ()), child))
            if place.legacy is not None:
                renamed[place.legacy] = child
            message = HouseholdMessage(
                household=household,
                child=child,
                residents=own,
                renamed=tuple(sorted(renamed.items())),
                named=place.named,
                record=(t, record.event_id, record.sender, record.type, record.need_level,
                        sorted(set(record.categories))),
                rules={rule.id: (aggregates(w), tuple((int(r[T]), r[ID]) for r in w))
                       for rule in self.household_rules
                       for w in [self._window(recs, rule, t)]},
            )  # fmt: skip
        newest = t if new["newest"] is None else max(new["newest"], t)
        new["newest"] = newest
        self._trim(new, newest - self._keep, when.now)
        return Applied(new, flags, message, left)

    @staticmethod
    def _window(recs: list[list[Any]], rule: CompiledFlagRule, t: int) -> list[list[Any]]:
        # recs is sorted by (occurred_at, arrival): the window is one slice of it.
        width = rule.window // timedelta(microseconds=1)
        lo = bisect.bisect_right(recs, t - width, key=time_of)
        return recs[lo : bisect.bisect_right(recs, t, lo=lo, key=time_of)]

    def withdraw(self, state: ChildState, event_ids: Iterable[str]) -> ChildState | None:
        """``state`` without the named records; None when nothing changed. Flags already
        raised stay raised (the desk hides the withdrawn records themselves), but a fire all
        of whose records are now withdrawn no longer blocks the rule (:mod:`._flag_fires`)."""
        gone = set(event_ids)
        recs = [r for r in state["recs"] if r[ID] not in gone]
        if len(recs) == len(state["recs"]) and not fires.names(state.get("on"), gone):
            return None  # most states, for most notices: no copy made
        when = self.forgetting()
        new = {**_copy(state, when), "recs": recs}
        taken_back = fires.withdrawn(new["fired"], new["on"], gone)
        if len(recs) == len(state["recs"]) and not taken_back:
            return None
        # Remembered as gone: a replay after a crash (or a re-read of the delivery topic)
        # must not bring a withdrawn record back into the window.
        went(new["gone"], (r[ID] for r in state["recs"] if r[ID] in gone), when.now)
        return new

    @staticmethod
    def _trim(state: ChildState, horizon: int, now: int) -> None:
        kept = [r for r in state["recs"] if r[T] > horizon]
        if len(kept) < len(state["recs"]):
            # Ids only (no dates, no senders), kept as long as Kafka could bring the record
            # again (._gone): redelivered after it left the window, it must still count as
            # seen, or it would flag again.
            went(state["gone"], (r[ID] for r in state["recs"] if r[T] <= horizon), now)
        state["recs"] = kept
        state["fired"] = {
            rule: kept
            for rule, times in state["fired"].items()
            if (kept := [f for f in times if f > horizon])
        }
        state["on"] = fires.kept(state.get("on") or {}, state["fired"])

    def _flag(
        self, rule: CompiledFlagRule, child: str, record: WindowRecord, window: list[list[Any]]
    ) -> Flag:
        return Flag(
            flag_id=flag_id(rule.id, child, record.event_id),
            party=self.party,
            rule=rule.id,
            title=rule.rule.title,
            child=child,
            event_ids=tuple(r[ID] for r in window),
            trigger_event_id=record.event_id,
            raised_at=record.occurred_at,
            window_seconds=int(rule.window.total_seconds()),
            withdrawable=True,  # its records are noted with the fire (``apply``)
        )
