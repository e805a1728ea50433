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
still evaluated, against what is kept). The ids of records trimmed away stay (ids only), so a
redelivery however late is still recognised.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from broker.desk._flag import Flag, child_key, flag_id
from broker.errors import EventInvalid
from broker.policy import CompiledFlagRule

__all__ = ["ChildState", "FlagEngine", "WindowRecord", "window_record"]

#: ``{"v": 1, "seq": next arrival number, "newest": µs or None,
#: "recs": [[occurred µs, arrival, event id, sender, type, need, [categories]], ...],
#: "fired": {rule id: [µs, ...]}}`` — JSON-ready, so a faust table stores it as is.
ChildState = dict[str, Any]
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_T, _SEQ, _ID, _SENDER, _TYPE, _NEED, _CATS = range(7)


def _micros(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1)


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


def _time(rec: list[Any]) -> int:
    return int(rec[_T])


def _copy(state: ChildState) -> ChildState:
    """A copy ``apply`` may change: records are never changed in place, fire lists are."""
    return {
        **state,
        "recs": list(state["recs"]),
        "fired": {rule: list(times) for rule, times in state["fired"].items()},
        "gone": list(state.get("gone", ())),
    }


def empty_state() -> ChildState:
    return {"v": 1, "seq": 0, "newest": None, "recs": [], "fired": {}, "gone": []}


class FlagEngine:
    """Raises ``party``'s flags under ``rules``; ``secret`` keys children (desk-linkage.key)."""

    def __init__(self, rules: Sequence[CompiledFlagRule], party: str, secret: bytes) -> None:
        self.rules = tuple(rules)
        self.party = party
        self._secret = secret
        longest = max((r.window for r in self.rules), default=timedelta(0))
        self._keep = 2 * longest // timedelta(microseconds=1)

    def children(self, view: Mapping[str, Any]) -> list[str]:
        """The keys of the view's child subjects, in subject order, each once."""
        out: list[str] = []
        for subject in view.get("subjects") or ():
            if not isinstance(subject, Mapping) or subject.get("role") != "child":
                continue
            key = child_key(self._secret, subject)
            if key is not None and key not in out:
                out.append(key)
        return out

    def process(
        self, view: Mapping[str, Any], states: MutableMapping[str, ChildState]
    ) -> list[Flag]:
        """Apply one delivered view to ``states`` (child key → state); the flags raised."""
        record = window_record(view)
        flags: list[Flag] = []
        for child in self.children(view):
            state, raised = self.apply(states.get(child), child, record)
            states[child] = state
            flags.extend(raised)
        return flags

    def apply(
        self, state: ChildState | None, child: str, record: WindowRecord
    ) -> tuple[ChildState, list[Flag]]:
        """``record`` joins ``child``'s state (not changed in place); the flags it raises."""
        if state is not None and (
            record.event_id in [r[_ID] for r in state["recs"]]
            or record.event_id in state.get("gone", ())
        ):
            return state, []  # seen: a redelivery or a restart's reprocessing
        new = _copy(state) if state is not None else empty_state()
        recs: list[list[Any]] = new["recs"]
        t = _micros(record.occurred_at)
        seq = new["seq"]
        new["seq"] = seq + 1
        bisect.insort(recs, [t, seq, record.event_id, record.sender, record.type,
                             record.need_level, sorted(set(record.categories))])  # fmt: skip
        flags: list[Flag] = []
        for rule in self.rules:
            width = rule.window // timedelta(microseconds=1)
            # recs is sorted by (occurred_at, arrival): the window is one slice of it.
            lo = bisect.bisect_right(recs, t - width, key=_time)
            window = recs[lo : bisect.bisect_right(recs, t, lo=lo, key=_time)]
            fired: list[int] = new["fired"].setdefault(rule.id, [])
            if any(t - width < f <= t for f in fired) or not rule.holds(aggregates(window)):
                continue
            fired.append(t)
            flags.append(self._flag(rule, child, record, window))
        newest = t if new["newest"] is None else max(new["newest"], t)
        new["newest"] = newest
        self._trim(new, newest - self._keep)
        return new, flags

    def withdraw(self, state: ChildState, event_ids: Iterable[str]) -> ChildState | None:
        """``state`` without the named records; None when nothing changed. Flags already
        raised stay raised (the desk hides the withdrawn records themselves)."""
        gone = set(event_ids)
        recs = [r for r in state["recs"] if r[_ID] not in gone]
        if len(recs) == len(state["recs"]):
            return None
        return {**_copy(state), "recs": recs}

    def _trim(self, state: ChildState, horizon: int) -> None:
        kept = [r for r in state["recs"] if r[_T] > horizon]
        if len(kept) < len(state["recs"]):
            # Ids only (no dates, no senders), kept for good: a record redelivered long
            # after it left the window must still count as seen, or it would flag again.
            state["gone"] = [
                *state.get("gone", ()),
                *(r[_ID] for r in state["recs"] if r[_T] <= horizon),
            ]
        state["recs"] = kept
        state["fired"] = {
            rule: kept
            for rule, times in state["fired"].items()
            if (kept := [f for f in times if f > horizon])
        }

    def _flag(
        self, rule: CompiledFlagRule, child: str, record: WindowRecord, window: list[list[Any]]
    ) -> Flag:
        return Flag(
            flag_id=flag_id(rule.id, child, record.event_id),
            party=self.party,
            rule=rule.id,
            title=rule.rule.title,
            child=child,
            event_ids=tuple(r[_ID] for r in window),
            trigger_event_id=record.event_id,
            raised_at=record.occurred_at,
            window_seconds=int(rule.window.total_seconds()),
        )


def aggregates(window: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """What a rule's ``when`` sees of a window (docs/policy-language.md, "Flag rules")."""
    return {
        "contacts": len(window),
        "distinct_agencies": len({r[_SENDER] for r in window}),
        "max_need": max((r[_NEED] for r in window), default=0),
        "categories": sorted({c for r in window for c in r[_CATS]}),
        "types": sorted({r[_TYPE] for r in window}),
        "senders": sorted({r[_SENDER] for r in window}),
    }
