"""Selects of fields that a condition's subjects and safeguarding maps do not have.

``_cel`` checks the first level (``event.<attr>``, ``recipient.<attr>``). One level down a
misspelling compiles too, and at run time raises a missing-key error, which a condition
takes as "could not decide": a clause then never applies and a restriction always does
(``withhold: all`` suppressing everything). So these are load errors, found in the source
with its strings blanked:

- ``event.safeguarding.<field>``;
- ``event.subjects[i].<field>``, also after ``filter`` (``event.subjects.filter(..)[0]``);
- ``<var>.<field>`` where ``var`` is bound by a macro (``all``, ``exists``, ``exists_one``,
  ``map``, ``filter``) over ``event.subjects``, or over a ``filter`` of it, and that binding
  is the innermost binding of ``var`` around the select.

Anything else reaching a subject (a subject map taken from ``map``, say) is followed on the
condition's syntax tree (``_cel_types``), and what neither follows is left to the load-time
probe, which runs the condition on a complete fictional event.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

from broker.policy._cel_reads import SAFEGUARDING_ATTRS, SUBJECT_ATTRS

__all__ = ["subject_problem", "unknown_selects"]

_SUBJECTS: Final = re.compile(r"(?<![\w.])event\s*\.\s*subjects(?!\w)")
_MACRO: Final = re.compile(r"\.\s*(all|exists_one|exists|map|filter)\s*(\()\s*([A-Za-z_]\w*)\s*,")
# A field select, not a method called on the value.
_FIELD: Final = r"\s*\.\s*([A-Za-z_]\w*)\b(?!\s*\()"
_SELECT: Final = re.compile(_FIELD)
_SAFEGUARDING_FIELD: Final = re.compile(rf"(?<![\w.])event\s*\.\s*safeguarding{_FIELD}")
# What a condition sees instead of a field it may not see (names a person, or near enough).
_SEE_INSTEAD: Final = {
    "nhs_number": "has_nhs_number",
    "postcode": "postcode_district",
    "dob": "age",
}
_HIDDEN: Final = frozenset({"given_name", "family_name", "name", "address", *_SEE_INSTEAD})


class _Binding(NamedTuple):
    var: str
    start: int  # just after ``var,``
    end: int  # at the macro's closing parenthesis
    over_subjects: bool


def _close(bare: str, at: int) -> int:
    """The index of the bracket closing the one at ``at`` (strings are blanked, so every
    bracket is code); the end of ``bare`` if none does."""
    opener = bare[at]
    closer = {"(": ")", "[": "]"}[opener]
    depth = 0
    for i in range(at, len(bare)):
        if bare[i] == opener:
            depth += 1
        elif bare[i] == closer:
            depth -= 1
            if depth == 0:
                return i
    return len(bare)


def _subject_reads(bare: str) -> tuple[list[str], set[int]]:
    """Fields selected on an indexed subject, and where macros over subjects start."""
    fields: list[str] = []
    starts: set[int] = set()
    for root in _SUBJECTS.finditer(bare):
        at = root.end()
        while True:
            while at < len(bare) and bare[at].isspace():
                at += 1
            if bare.startswith("[", at):
                if select := _SELECT.match(bare, _close(bare, at) + 1):
                    fields.append(select.group(1))
                break
            macro = _MACRO.match(bare, at)
            if macro is None:
                break
            starts.add(macro.start())
            if macro.group(1) != "filter":
                break  # a boolean, or a list of whatever was mapped: no longer subjects
            at = _close(bare, macro.start(2)) + 1
    return fields, starts


def _bindings(bare: str, over_subjects: set[int]) -> list[_Binding]:
    return [
        _Binding(m.group(3), m.end(), _close(bare, m.start(2)), m.start() in over_subjects)
        for m in _MACRO.finditer(bare)
    ]


def subject_problem(name: str) -> str:
    """The problem with a subject field a condition selects and never sees."""
    known = ", ".join(sorted(SUBJECT_ATTRS))
    if name in _HIDDEN:
        instead = _SEE_INSTEAD.get(name)
        hint = f"; it sees {instead}" if instead else ""
        return f"CEL reads subject field {name!r}, which a condition never sees{hint}"
    return f"CEL refers to unknown subject field {name!r} (a subject has: {known})"


def unknown_selects(bare: str) -> list[str]:
    """Problems with the subject and safeguarding fields ``bare`` (the source with strings
    and comments blanked) selects, each field once."""
    problems: dict[str, None] = {}
    known_sg = ", ".join(sorted(SAFEGUARDING_ATTRS))
    for name in _SAFEGUARDING_FIELD.findall(bare):
        if name not in SAFEGUARDING_ATTRS:
            problems[
                f"CEL refers to unknown field event.safeguarding.{name} (known: {known_sg})"
            ] = None
    indexed, starts = _subject_reads(bare)
    fields = list(indexed)
    bindings = _bindings(bare, starts)
    for binding in (b for b in bindings if b.over_subjects):
        var = re.compile(rf"(?<![\w.]){re.escape(binding.var)}{_FIELD}")
        for select in var.finditer(bare, binding.start, binding.end):
            # Only if no inner macro rebinds the name around this select.
            around = [
                b for b in bindings if b.var == binding.var and b.start <= select.start() < b.end
            ]
            if max(around, key=lambda b: b.start) == binding:
                fields.append(select.group(1))
    for name in fields:
        if name not in SUBJECT_ATTRS:
            problems[subject_problem(name)] = None
    return list(problems)
