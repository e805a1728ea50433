"""The sample windows a flag rule's ``when`` is tried on when the bundle loads.

A condition that fails on a window it meets in service (an empty list indexed, a count
divided by zero) never fires on that window, so the loader refuses a rule that fails on any
sample. The samples are aggregates of the right types at the edges a window reaches: no
record, one, and several; counts of 0, 1, a few and many; each need level; each list empty,
of one item and of several, holding the strings the rule itself names (so that a guard such
as ``'neglect' in categories`` lets the rest be tried). A household rule's household varies
the same way, beside each of the child's. Not a proof: a rule can still fail on a window no
sample is, and the flag service then logs and counts it (``flags_rule_failed``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Final

import cel

from broker.policy._cel_reads import LEXEMES

__all__ = ["probes"]

_COUNTS: Final = (0, 1, 2, 3, 100)
_EDGES: Final[dict[str, tuple[int, ...]]] = {
    "contacts": _COUNTS,
    "distinct_agencies": _COUNTS,
    "max_need": (0, 1, 2, 3, 4),
    "children": _COUNTS,
}
_LISTS: Final[dict[str, tuple[str, ...]]] = {
    "categories": ("domestic_abuse", "probe"),
    "types": ("police.domestic_incident", "health.ae_attendance"),
    "senders": ("probe-a", "probe-b"),
}


def _strings(when: str) -> list[str]:
    """The string literals ``when`` names, each once, as CEL reads them."""
    found: dict[str, None] = {}
    for lexeme in LEXEMES.finditer(when):
        text = lexeme.group()
        if text.startswith("//") or text[:1] in {"b", "B"}:
            continue  # a comment, or bytes: no list here holds bytes
        try:
            value = cel.evaluate(text)
        except Exception:  # noqa: BLE001, S112  # a literal CEL cannot read: compile says so
            continue
        if isinstance(value, str):
            found[value] = None
    return list(found)


def _bases(named: list[str], household: bool) -> list[tuple[str, dict[str, Any]]]:
    """A busy window, one of a single record, and an empty one, each named."""
    many = {name: [*dict.fromkeys((*values, *named))] for name, values in _LISTS.items()}
    one = {name: [named[0] if named else values[0]] for name, values in _LISTS.items()}
    busy = {"contacts": 3, "distinct_agencies": 2, "max_need": 4, **many}
    single = {"contacts": 1, "distinct_agencies": 1, "max_need": 1, **one}
    empty = {"contacts": 0, "distinct_agencies": 0, "max_need": 0, **{n: [] for n in _LISTS}}
    if household:
        busy["children"], single["children"], empty["children"] = 2, 1, 0
    return [("a busy window", busy), ("a window of one record", single),
            ("an empty window", empty)]  # fmt: skip


def _varied(
    name: str, base: dict[str, Any], named: list[str]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``base``, then ``base`` with one aggregate at each of its edges, each described."""
    yield name, base
    for field, edges in _EDGES.items():
        if field in base:
            yield from ((f"{name} with {field} {n}", {**base, field: n}) for n in edges)
    for field, values in _LISTS.items():
        full = [*dict.fromkeys((*values, *named))]
        for items in ([], full[:1], full):
            yield f"{name} with {field} {json.dumps(items)}", {**base, field: items}


def probes(when: str, household: bool) -> list[tuple[str, dict[str, Any]]]:
    """The aggregates ``when`` is tried on, each described and once, a busy window first."""
    named = _strings(when)
    children = _bases(named, household=False)
    samples: list[tuple[str, dict[str, Any]]]
    if household:
        houses = _bases(named, household=True)
        pairs = [(c, h) for c, base in zip(children, houses, strict=True)
                 for h in _varied(*base, named)]  # fmt: skip
        pairs += [(c, h) for base, h in zip(children, houses, strict=True)
                  for c in _varied(*base, named)]  # fmt: skip
        samples = [(f"{c[0]}, its household {h[0]}", {**c[1], "household": h[1]})
                   for c, h in pairs]  # fmt: skip
    else:
        samples = [sample for base in children for sample in _varied(*base, named)]
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for sample in samples:
        found.setdefault(json.dumps(sample[1], sort_keys=True), sample)
    return list(found.values())
