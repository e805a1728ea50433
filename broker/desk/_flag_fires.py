"""The records each fire of a rule was raised on, so that a withdrawal can take a fire back.

A rule fires once per window for a child (the brief's rule): the time it fired blocks a
second flag until it leaves the window. A flag whose records are all withdrawn (consent
withdrawn) no longer says anything, and must not go on blocking: so a state keeps, beside
each fire time, the ids of the records in its window that are not withdrawn yet, and the
fire time goes when the last of them does. A record that only aged out of the window is not
withdrawn: its fire stays.

Kept under ``on`` (a child's: ``{rule: {"<µs>": [event id, ...]}}``; a household's the
same per child); fire times are text there, as JSON keys must be. A state written before
2026-12-07 has no ``on``: its fires stay, whatever is withdrawn, as they always did.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["Fires", "copied", "kept", "merged", "names", "note", "withdrawn"]

#: rule id → fire time (µs, as text) → the ids of its records not withdrawn.
Fires = dict[str, dict[str, list[str]]]


def copied(on: Mapping[str, Any] | None) -> Fires:
    return {rule: {t: list(ids) for t, ids in by.items()} for rule, by in (on or {}).items()}


def note(on: Fires, rule: str, at: int, event_ids: Iterable[str]) -> None:
    on.setdefault(rule, {})[str(at)] = list(dict.fromkeys(event_ids))


def names(on: Mapping[str, Any] | None, event_ids: set[str]) -> bool:
    """Whether any fire's records include one of ``event_ids``."""
    return any(not event_ids.isdisjoint(ids) for by in (on or {}).values() for ids in by.values())


def withdrawn(fired: dict[str, list[int]], on: Fires, gone: set[str]) -> bool:
    """Take ``gone`` out of each fire's records (both changed in place); a fire left with
    none leaves ``fired``. Whether anything changed."""
    changed = False
    for rule, by in on.items():
        for at, ids in list(by.items()):
            left = [i for i in ids if i not in gone]
            if len(left) == len(ids):
                continue
            changed = True
            if left:
                by[at] = left
                continue
            del by[at]
            times = fired.get(rule, [])
            if int(at) in times:
                times.remove(int(at))
    for rule in [r for r, times in fired.items() if not times]:
        del fired[rule]
    for rule in [r for r, by in on.items() if not by]:
        del on[rule]
    return changed


def kept(on: Fires, fired: Mapping[str, list[int]]) -> Fires:
    """``on`` for the fires still in ``fired`` (after a trim)."""
    out: Fires = {}
    for rule, by in on.items():
        times = {str(t) for t in fired.get(rule, ())}
        if left := {at: ids for at, ids in by.items() if at in times}:
            out[rule] = left
    return out


def merged(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> Fires:
    """Both states' fires' records (``adopt``, a renamed child): one fire time's are joined."""
    out = copied(a)
    for rule, by in (b or {}).items():
        mine = out.setdefault(rule, {})
        for at, ids in by.items():
            mine[at] = list(dict.fromkeys([*mine.get(at, ()), *ids]))
    return out
