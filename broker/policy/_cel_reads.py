"""What a CEL condition can observe of an event, read off its source.

Converting the event into CEL values is most of what a condition costs (the binding takes
about two microseconds a string, dict keys included), so a condition is given only what it
can observe, and a condition that observes no free text is memoised on exactly that.

What it can observe is worked out conservatively from the source with its string literals
blanked (a string is never a read): the event attributes it names (``event.<attr>``, which
``_cel`` requires of every read), and, of the two attributes that are maps,

- of each subject, the fields it selects by name, provided every read of ``event.subjects``
  is ``all``, ``exists`` or ``exists_one`` (which answer a boolean, whatever else a subject
  holds) over a variable used nowhere but as ``var.field``: then nothing else about a
  subject can reach the condition (not its keys, its size, or a comparison of whole
  subjects). Anything else (indexing, ``map``, ``size``, a subject compared or passed
  whole, the variable bound twice) observes every field;
- of ``safeguarding``, the fields it selects by name, provided every read of
  ``event.safeguarding`` is such a select; every field otherwise.

A view narrowed this way answers the condition exactly as the whole event does;
tests/unit/policy/test_cel.py holds the two to each other.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

__all__ = [
    "ALL",
    "EVENT_ATTRS",
    "LEXEMES",
    "NOTHING",
    "SAFEGUARDING_ATTRS",
    "SUBJECT_ATTRS",
    "Reads",
    "blank_strings",
    "reads_of",
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
        "outcome",
        "safeguarding",
        "subjects",
    }
)
SUBJECT_ATTRS: Final = frozenset(
    {"role", "age", "school_urn", "postcode_district", "has_nhs_number"}
)
SAFEGUARDING_ATTRS: Final = frozenset({"concern", "justification"})

# CEL's comments and string literals, lexed left to right so that a quote inside a comment,
# or ``//`` inside a string, is read as CEL reads it. A raw string (``r``, ``br``) has no
# escapes: ``r'\'`` is a whole string, and reading its backslash as an escape would swallow
# the code after it, hiding reads from the analysis (and so from the memo key). Shared with
# _cel_parse, so that CEL is lexed one way.
LEXEMES: Final = re.compile(
    r"//[^\n]*"
    r"""|[bB]?[rR](?:'''.*?'''|\"\"\".*?\"\"\"|'[^'\n]*'|"[^"\n]*")"""
    r"""|[bB]?(?:'''(?:\\.|[^\\])*?'''|\"\"\"(?:\\.|[^\\])*?\"\"\"|'(?:\\.|[^'\\\n])*'"""
    r"""|"(?:\\.|[^"\\\n])*")""",
    re.DOTALL,
)
_SUBJECTS: Final = re.compile(r"(?<![\w.])event\s*\.\s*subjects(?!\w)")
_OVER_SUBJECTS: Final = re.compile(
    r"(?<![\w.])event\s*\.\s*subjects\s*\.\s*(?:all|exists_one|exists)\s*\(\s*([A-Za-z_]\w*)\s*,"
)
_SAFEGUARDING: Final = re.compile(r"(?<![\w.])event\s*\.\s*safeguarding(?!\w)")
# A select, not a method called on the whole map (``.exists(...)``, ``.size()``): the
# ``\b`` stops a name being cut short to dodge the lookahead.
_FIELD: Final = r"\s*\.\s*([A-Za-z_]\w*)\b(?!\s*\()"
_SAFEGUARDING_FIELD: Final = re.compile(rf"(?<![\w.])event\s*\.\s*safeguarding{_FIELD}")


class Reads(NamedTuple):
    """What of an event a condition (or a set of them) can observe."""

    attrs: frozenset[str]
    subject: frozenset[str]
    safeguarding: frozenset[str]

    def covers(self, other: Reads) -> bool:
        return (
            other.attrs <= self.attrs
            and other.subject <= self.subject
            and other.safeguarding <= self.safeguarding
        )

    def union(self, *others: Reads) -> Reads:
        return Reads(
            self.attrs.union(*(o.attrs for o in others)),
            self.subject.union(*(o.subject for o in others)),
            self.safeguarding.union(*(o.safeguarding for o in others)),
        )


ALL: Final = Reads(EVENT_ATTRS, SUBJECT_ATTRS, SAFEGUARDING_ATTRS)
NOTHING: Final = Reads(frozenset(), frozenset(), frozenset())


def blank_strings(source: str) -> str:
    """``source`` with each string literal as ``''`` and each comment as a space: neither is
    ever a read."""
    return LEXEMES.sub(_blank, source)


def _blank(lexeme: re.Match[str]) -> str:
    return " " if lexeme.group().startswith("//") else "''"


def reads_of(bare: str, attrs: frozenset[str]) -> Reads:
    """What a condition reading ``attrs`` (checked names) observes; ``bare`` is its source
    with string literals blanked."""
    subject = _subject_fields(bare) if "subjects" in attrs else frozenset()
    safeguarding = _safeguarding_fields(bare) if "safeguarding" in attrs else frozenset()
    return Reads(attrs, subject, safeguarding)


def _subject_fields(bare: str) -> frozenset[str]:
    bound = _OVER_SUBJECTS.findall(bare)
    if len(bound) != len(_SUBJECTS.findall(bare)):
        return SUBJECT_ATTRS  # subjects read some other way: indexed, mapped, sized, compared
    selected: set[str] = set()
    for var in set(bound):
        name = rf"(?<![\w.]){re.escape(var)}(?!\w)"
        selects = re.findall(name + _FIELD, bare)
        if len(re.findall(name, bare)) != bound.count(var) + len(selects):
            return SUBJECT_ATTRS  # the variable is used whole somewhere, or bound over more
        selected.update(selects)
    return frozenset(selected) & SUBJECT_ATTRS


def _safeguarding_fields(bare: str) -> frozenset[str]:
    selects = _SAFEGUARDING_FIELD.findall(bare)
    if len(selects) != len(_SAFEGUARDING.findall(bare)):
        return SAFEGUARDING_ATTRS  # read whole somewhere
    return frozenset(selects) & SAFEGUARDING_ATTRS
