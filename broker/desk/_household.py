"""Household rules: a flag rule over a child's records and the records of its household.

A household is the children sharing an address (:func:`household_key`). The flag engine
(``_flagging``) keeps each child's window where the child's records meet; a household's
records meet elsewhere (the faust service partitions by household key), so a household rule
is evaluated in a second step, from a :class:`HouseholdMessage` the child's step sends:

- the child's step places the record: in the household its view gives (address and
  postcode shared), or else in the household the child was last placed in; a child never
  placed yet has no household and its household rules are not evaluated for the record;
- it sends the record, the children of the record at that address, and for each household
  rule the child's aggregates and records in the rule's window (the child's own records,
  wherever they were sent from);
- the household's step adds the record (once, however many of its children arrive) and
  evaluates each household rule for the child with ``household``: the aggregates of the
  household's records in the window, and ``children``, how many children they are about;
- a rule that fires for the child is checked at once for its siblings: the other children
  of the household's window, but none the record names (wherever it places them: each is
  evaluated where its own placement sends it) and none the household has heard has moved
  away: when a record places a child in another household, the child's step tells the one
  it left (``{"left": household, "child": key}``, :func:`left_household`), and a later
  message placing the child here again brings it back.

A flag for the same (rule, child) fires at most once per window in one household, as a child
rule's does. State is one JSON value per household (:data:`HouseholdState`), kept like a
child's: twice the longest household window, then ids only, forgotten as a child's are
(:mod:`._gone`).

A message names the keys its children had before 2026-12-05 where they differ
(``HouseholdMessage.renamed``): the household's records and fire times under an old key are
renamed to the new one first, so a child is not counted twice, nor flagged twice in a window.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from broker.desk import _flag_fires as fires
from broker.desk._flag import Flag, flag_id
from broker.desk._gone import STATE_VERSION, Forget, dated, forget, went
from broker.desk._window import ID, SEQ, T, aggregates, from_micros, time_of
from broker.policy import CompiledFlagRule

__all__ = [
    "HouseholdMessage",
    "HouseholdState",
    "apply_household",
    "empty_household",
    "left_household",
    "withdraw_household",
]

#: ``{"v": 2, "seq": n, "newest": µs or None, "recs": [[occurred µs, arrival, event id,
#: sender, type, need, [categories], [children], [evaluated]], ...], "fired": {rule: {child:
#: [µs]}}, "on": {rule: {child: {"<µs>": [event id]}}}, "gone": {event id: seconds when it
#: went}, "away": [child, ...]}``: a child's state's shape (format 1's ``gone`` a list, as
#: a child's), each record naming the children it is about here and those the household
#: rules were evaluated for at it; ``on`` as a child's, per child (:mod:`._flag_fires`);
#: ``away``: children of its records since placed elsewhere (absent: none).
HouseholdState = dict[str, Any]
_CHILDREN, _EVALUATED = 7, 8


@dataclass(frozen=True, slots=True)
class HouseholdMessage:
    """What a child's step tells its household's step about one new record."""

    household: str
    child: str
    # The record's children at this address (the child among them), each once.
    residents: tuple[str, ...]
    # [occurred µs, event id, sender, type, need, [categories]]
    record: tuple[Any, ...]
    # rule id → (the child's aggregates, [[occurred µs, event id], ...] in the window)
    rules: Mapping[str, tuple[Mapping[str, Any], tuple[tuple[int, str], ...]]]
    # (legacy key, key) of the children, as ``Placement.renamed``, and the child's adopted keys.
    renamed: tuple[tuple[str, str], ...] = ()
    # Every child of the record, wherever placed (``Placement.named``): none is a sibling
    # at it. Empty in a message an older service wrote: then only ``residents`` are left out.
    named: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "household": self.household,
            "child": self.child,
            "residents": list(self.residents),
            "record": list(self.record),
            "rules": {r: {"aggregates": dict(a), "window": [list(w) for w in win]}
                      for r, (a, win) in self.rules.items()},
            "renamed": [list(pair) for pair in self.renamed],
            "named": list(self.named),
        }  # fmt: skip

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> HouseholdMessage:
        return cls(
            household=str(body["household"]),
            child=str(body["child"]),
            residents=tuple(str(c) for c in body["residents"]),
            record=tuple(body["record"]),
            rules={r: (dict(v["aggregates"]), tuple((int(t), str(i)) for t, i in v["window"]))
                   for r, v in body["rules"].items()},
            # Absent from a message an older service wrote.
            renamed=tuple((str(o), str(n)) for o, n in body.get("renamed") or ()),
            named=tuple(str(c) for c in body.get("named") or ()),
        )  # fmt: skip


def empty_household() -> HouseholdState:
    return {"v": STATE_VERSION, "seq": 0, "newest": None, "recs": [], "fired": {}, "on": {},
            "gone": {}}  # fmt: skip


def _copy(state: HouseholdState, when: Forget) -> HouseholdState:
    """A copy to change, in format 2, without the gone ids older than the keep."""
    return {
        **state,
        "v": STATE_VERSION,
        "recs": list(state["recs"]),
        "fired": {r: {c: list(ts) for c, ts in by.items()} for r, by in state["fired"].items()},
        "on": {r: fires.copied(by) for r, by in (state.get("on") or {}).items()},
        "gone": forget(dated(state, when.now), when),
    }


def apply_household(
    state: HouseholdState | None,
    msg: HouseholdMessage,
    rules: Sequence[CompiledFlagRule],
    *,
    party: str,
    keep: timedelta,
    when: Forget,
) -> tuple[HouseholdState, list[Flag]]:
    """``msg``'s record joins the household (``state`` is not changed in place); the flags
    the household ``rules`` raise for ``msg.child``. Records more than ``keep`` behind the
    newest leave the state (ids only stay, dated ``when.now``, until ``when.keep``)."""
    event_id = msg.record[1]
    at = None
    if state is not None and msg.renamed:
        state = _renamed(state, dict(msg.renamed), when)
    if state is not None:
        if event_id in state.get("gone", ()):
            return state, []
        at = next((i for i, r in enumerate(state["recs"]) if r[ID] == event_id), None)
        if at is not None and msg.child in state["recs"][at][_EVALUATED]:
            return state, []  # seen: a redelivery or a restart's reprocessing
    new = _copy(state, when) if state is not None else empty_household()
    recs: list[list[Any]] = new["recs"]  # a copy in the same order: ``at`` still holds
    t = int(msg.record[0])
    residents = sorted({*msg.residents, msg.child})
    if at is not None:
        old = recs[at]
        recs[at] = [*old[:_CHILDREN], sorted({*old[_CHILDREN], *residents}),
                    sorted({*old[_EVALUATED], msg.child})]  # fmt: skip
    else:
        seq = new["seq"]
        new["seq"] = seq + 1
        bisect.insort(recs, [t, seq, *msg.record[1:], residents, [msg.child]])
    # Placed here by this record (or, without an address in it, still placed here): back.
    if away := [c for c in new.get("away", ()) if c not in residents]:
        new["away"] = away
    else:
        new.pop("away", None)
    not_siblings = {*residents, *msg.named, *away}
    flags: list[Flag] = []
    for rule in rules:
        mine = msg.rules.get(rule.id)
        if mine is None:
            continue
        width = rule.window // timedelta(microseconds=1)
        lo = bisect.bisect_right(recs, t - width, key=time_of)
        window = recs[lo : bisect.bisect_right(recs, t, lo=lo, key=time_of)]
        fired: list[int] = new["fired"].setdefault(rule.id, {}).setdefault(msg.child, [])
        if any(t - width < f <= t for f in fired):
            continue
        household = {**aggregates(window),
                     "children": len({c for r in window for c in r[_CHILDREN]})}  # fmt: skip
        if not rule.holds({**mine[0], "household": household}):
            continue
        fired.append(t)
        flag = _flag(rule, msg, window, mine[1], party)
        _on(new, rule.id, msg.child)[str(t)] = list(flag.event_ids)
        flags.append(flag)
        flags.extend(_siblings(new, rule, msg, window, household, not_siblings, party))
    newest = t if new["newest"] is None else max(new["newest"], t)
    new["newest"] = newest
    _trim(new, newest - keep // timedelta(microseconds=1), when.now)
    return new, flags


def _siblings(  # noqa: PLR0917  # the fire's whole context, as apply_household holds it
    state: HouseholdState,
    rule: CompiledFlagRule,
    msg: HouseholdMessage,
    window: list[list[Any]],
    household: Mapping[str, Any],
    named: set[str],
    party: str,
) -> list[Flag]:
    """The rule has fired for ``msg.child``: checked now, at the same time, for the other
    children of the household's window but those ``named`` (the record's children, each
    evaluated with its own message, and those since placed elsewhere), in key order, each
    once per window. A sibling's own aggregates are its records at this address in the
    window (the household step holds no other); ``state`` (being written) records each
    fire."""
    t = int(msg.record[0])
    width = rule.window // timedelta(microseconds=1)
    flags = []
    for other in sorted({c for r in window for c in r[_CHILDREN]} - named):
        fired: list[int] = state["fired"][rule.id].setdefault(other, [])
        if any(t - width < f <= t for f in fired):
            continue
        about = [r for r in window if other in r[_CHILDREN]]
        if not rule.holds({**aggregates(about), "household": household}):
            continue
        fired.append(t)
        flag = _flag(rule, msg, window, (), party, child=other)
        _on(state, rule.id, other)[str(t)] = list(flag.event_ids)
        flags.append(flag)
    return flags


def left_household(state: HouseholdState, child: str) -> HouseholdState:
    """``state`` noting that a record has placed ``child`` in another household (not changed
    in place; ``state`` itself when it holds no record about the child, or knows already):
    the child is no sibling here until a record places it here again."""
    about = any(child in r[_CHILDREN] for r in state["recs"])
    if not about or child in state.get("away", ()):
        return state
    return {**state, "away": sorted({*state.get("away", ()), child})}


def _renamed(state: HouseholdState, to: Mapping[str, str], when: Forget) -> HouseholdState:
    """``state`` naming each child by its key now (``to``: legacy key → key); ``state`` itself
    when it names none by a legacy key (after the first of the child's records, always)."""
    named = {c for r in state["recs"] for c in (*r[_CHILDREN], *r[_EVALUATED])}
    named.update(c for by_child in state["fired"].values() for c in by_child)
    if named.isdisjoint(to):
        return state
    new = _copy(state, when)
    new["recs"] = [
        [*r[:_CHILDREN], *(sorted({to.get(c, c) for c in r[i]}) for i in (_CHILDREN, _EVALUATED))]
        for r in new["recs"]
    ]
    fired: dict[str, dict[str, list[int]]] = {}
    for rule, by_child in new["fired"].items():
        times: dict[str, set[int]] = {}
        for c, ts in by_child.items():
            times.setdefault(to.get(c, c), set()).update(ts)
        fired[rule] = {c: sorted(ts) for c, ts in times.items()}
    new["fired"] = fired
    on: dict[str, dict[str, dict[str, list[str]]]] = {}
    for rule, by_child in new["on"].items():
        for c, at in by_child.items():
            mine = on.setdefault(rule, {}).setdefault(to.get(c, c), {})
            for t, ids in at.items():
                mine[t] = list(dict.fromkeys([*mine.get(t, ()), *ids]))
    new["on"] = on
    if new.get("away"):
        new["away"] = sorted({to.get(c, c) for c in new["away"]})
    return new


def _on(state: HouseholdState, rule: str, child: str) -> dict[str, list[str]]:
    by_rule: dict[str, dict[str, list[str]]] = state["on"].setdefault(rule, {})
    return by_rule.setdefault(child, {})


def _per_child(state: HouseholdState) -> dict[str, tuple[dict[str, list[int]], fires.Fires]]:
    """Each child's fire times and fires' records, as a child's state holds them (views
    onto ``state``'s lists: changing them changes it)."""
    out: dict[str, tuple[dict[str, list[int]], fires.Fires]] = {}
    for rule, by_child in state["on"].items():
        for c, at in by_child.items():
            fired, on = out.setdefault(c, ({}, {}))
            on[rule] = at
            fired[rule] = state["fired"].setdefault(rule, {}).setdefault(c, [])
    return out


def withdraw_household(
    state: HouseholdState, event_ids: set[str], when: Forget
) -> HouseholdState | None:
    """``state`` without the named records; None when nothing changed. A child's fire all
    of whose records are withdrawn no longer blocks the rule for it (:mod:`._flag_fires`)."""
    recs = [r for r in state["recs"] if r[ID] not in event_ids]
    if len(recs) == len(state["recs"]) and not any(
        fires.names(by_child, event_ids) for by_child in (state.get("on") or {}).values()
    ):
        return None
    new = {**_copy(state, when), "recs": recs}
    for fired, on in _per_child(new).values():
        fires.withdrawn(fired, on, event_ids)
    new["fired"] = {r: kept for r, by in new["fired"].items()
                    if (kept := {c: ts for c, ts in by.items() if ts})}  # fmt: skip
    new["on"] = {r: kept for r, by in new["on"].items()
                 if (kept := {c: at for c, at in by.items() if at})}  # fmt: skip
    # As a child's: stays gone for as long as the record could come again.
    went(new["gone"], (r[ID] for r in state["recs"] if r[ID] in event_ids), when.now)
    return new


def _trim(state: HouseholdState, horizon: int, now: int) -> None:
    old = [r[ID] for r in state["recs"] if r[T] <= horizon]
    if old:
        # Ids only, dated: a late redelivery must still count as seen (._gone).
        went(state["gone"], old, now)
        state["recs"] = [r for r in state["recs"] if r[T] > horizon]
    fired: dict[str, dict[str, list[int]]] = {}
    for rule, by_child in state["fired"].items():
        kept = {c: ts for c, times in by_child.items() if (ts := [f for f in times if f > horizon])}
        if kept:
            fired[rule] = kept
    state["fired"] = fired
    on: dict[str, dict[str, dict[str, list[str]]]] = {}
    for rule, by_child in (state.get("on") or {}).items():
        for c, at in by_child.items():
            times = {str(t) for t in fired.get(rule, {}).get(c, ())}
            if left := {t: ids for t, ids in at.items() if t in times}:
                on.setdefault(rule, {})[c] = left
    state["on"] = on
    if state.get("away"):
        # Only a child some kept record is about could be taken for a sibling.
        about = {c for r in state["recs"] for c in r[_CHILDREN]}
        if away := [c for c in state["away"] if c in about]:
            state["away"] = away
        else:
            del state["away"]


def _flag(
    rule: CompiledFlagRule,
    msg: HouseholdMessage,
    window: list[list[Any]],
    own: tuple[tuple[int, str], ...],
    party: str,
    *,
    child: str | None = None,
) -> Flag:
    child = msg.child if child is None else child
    # The household's records in arrival order at each time, then the child's records
    # from other addresses: occurred_at order throughout, each record once.
    there = {r[ID] for r in window}
    ranked = [(r[T], 0, r[SEQ], r[ID]) for r in window]
    ranked += [(t, 1, i, event_id) for i, (t, event_id) in enumerate(own) if event_id not in there]
    event_ids = tuple(event_id for *_, event_id in sorted(ranked))
    return Flag(
        flag_id=flag_id(rule.id, child, msg.record[1]),
        party=party,
        rule=rule.id,
        title=rule.rule.title,
        child=child,
        event_ids=event_ids,
        trigger_event_id=msg.record[1],
        raised_at=from_micros(int(msg.record[0])),
        window_seconds=int(rule.window.total_seconds()),
        household=msg.household,
        withdrawable=True,  # its records are noted with the fire (``_on``)
    )
