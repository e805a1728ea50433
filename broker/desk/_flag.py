"""What the flag service tells the desk: one raised flag, and how a child is keyed.

The contract between the faust flagging service (which raises flags) and the desk web app
(which shows them): both key a child the same way, with a secret local to the recipient
party, so a flag, its window table and the desk's timeline name a child only by a keyed hash.
The brief's rule: a child is keyed by NHS number; without one, by given name, family name and
date of birth. A household (children sharing an address) is keyed the same way, by address
and postcode.

Names are compared as the broker's linkage compares them (``broker.events.normalise_name``).
Until 2026-12-05 they were only trimmed and case-folded; a child whose key changed then
still has its old one (:attr:`ChildKeys.legacy`), under which the flag service and the desk
find what they filed before (docs/desk.md, "Upgrading").
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from broker.events import normalise_name

__all__ = [
    "ChildKeys",
    "Flag",
    "child_key",
    "child_keys",
    "flag_id",
    "household_key",
    "view_child_keys",
    "view_keys_child_by_nhs_number",
]

_NOT_WORD = re.compile(r"[^0-9a-z]+")


class ChildKeys(NamedTuple):
    """A child subject's key (None: it cannot be keyed), and the key it had before names
    were normalised, where that differs (None otherwise)."""

    key: str | None
    legacy: str | None = None


def _mac(secret: bytes, material: str) -> str:
    return hmac.new(secret, material.encode(), hashlib.sha256).hexdigest()[:32]


def child_keys(secret: bytes, subject: Mapping[str, Any]) -> ChildKeys:
    """The desk's keys for a child subject of a delivered view (see :func:`child_key`)."""
    nhs = subject.get("nhs_number")
    if nhs:
        return ChildKeys(_mac(secret, f"nhs\x00{nhs}"))
    given, family, dob = (subject.get(k) for k in ("given_name", "family_name", "dob"))
    if not (isinstance(given, str) and isinstance(family, str) and given and family and dob):
        return ChildKeys(None)
    # The material is as before, with the names normalised: a name that was letters only
    # (most are) keeps its key, and only the others pay for a second HMAC.
    old = (given.strip().casefold(), family.strip().casefold())
    new = (normalise_name(given), normalise_name(family))
    key = None
    if isinstance(dob, str) and all(new):
        key = _mac(secret, f"demo\x00{new[0]}\x00{new[1]}\x00{dob}")
        if new == old:
            return ChildKeys(key)
    return ChildKeys(key, _mac(secret, f"demo\x00{old[0]}\x00{old[1]}\x00{dob}"))


def child_key(secret: bytes, subject: Mapping[str, Any]) -> str | None:
    """The desk's key for a child subject of a delivered view, or None if it cannot be keyed.

    Names are compared as the broker's linkage compares them: case, accents, spacing, hyphens
    and apostrophes are ignored, so "Mary-Ann" and "mary ann", "Siân" and "Sian", "O'Brien"
    and "OBrien" are one child. A subject is not keyed (it raises nothing and has no
    timeline) without an NHS number or both names and a date of birth (ISO date text), nor
    when a name has no letter at all ("-", "?": not known): keying those would make every
    such child of one birth date one child.
    """
    return child_keys(secret, subject).key


def _child_subjects(view: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The view's child subjects: every subject when it names no roles (an outcome's or a
    school's view may not)."""
    subjects = [s for s in view.get("subjects") or () if isinstance(s, Mapping)]
    if any("role" in s for s in subjects):
        subjects = [s for s in subjects if s.get("role") == "child"]
    return subjects


def view_child_keys(view: Mapping[str, Any], secret: bytes) -> list[ChildKeys]:
    """The keys of the view's child subjects (every subject's when the view names no roles,
    as an outcome's or a school's view may not), in subject order, each child once; a subject
    that cannot be keyed now is listed only if it had a legacy key."""
    found: dict[str, ChildKeys] = {}
    for subject in _child_subjects(view):
        keys = child_keys(secret, subject)
        if keys.key is not None:
            found.setdefault(keys.key, keys)
        elif keys.legacy is not None:
            found.setdefault(keys.legacy, keys)
    return list(found.values())


def view_keys_child_by_nhs_number(view: Mapping[str, Any]) -> bool:
    """Whether a child subject of the view (as :func:`view_child_keys` chooses them) is keyed
    by its NHS number: only such a record can a search by NHS number find, since it looks a
    record up by the child's key. An adult's NHS number does not make it findable."""
    # child_keys keys a subject by its NHS number whenever it has one.
    return any(bool(s.get("nhs_number")) for s in _child_subjects(view))


def household_key(secret: bytes, subject: Mapping[str, Any]) -> str | None:
    """The desk's key for the address a subject's view gives, or None without one.

    Both the address and the postcode must be shared (an address alone may exist in many
    towns). Case, punctuation and spacing are ignored, so "12 High St., Tipton" and
    "12 high st tipton" are one household; other spellings ("Street") are not matched.
    """
    address, postcode = subject.get("address"), subject.get("postcode")
    if not (isinstance(address, str) and isinstance(postcode, str)):
        return None
    street = _NOT_WORD.sub(" ", address.casefold()).strip()
    code = _NOT_WORD.sub("", postcode.casefold())
    if not (street and code):
        return None
    return _mac(secret, f"household\x00{street}\x00{code}")


def flag_id(rule: str, child: str, trigger_event_id: str) -> str:
    """Deterministic: the same rule, child and triggering record always give the same id, so a
    flag raised again after a restart is recognisably the same flag, never a second one. (A
    flag raised under a child's legacy key has that key's id: the flag service checks both.)"""
    digest = hashlib.sha256(f"{rule}\x00{child}\x00{trigger_event_id}".encode()).hexdigest()
    return digest[:32]


class Flag(BaseModel):
    """A rule fired for a child (``desk-flag.v1``): names the rule and the records, no score.

    Published by the flag service on ``accord.desk.<party>.flags`` (key: ``flag_id``) and read
    by the desk. It holds no name, date of birth or NHS number: the child is ``child``, the
    party-local keyed hash of :func:`child_key`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str = Field(default="desk_flag", pattern=r"^desk_flag$")
    flag_id: str
    party: str
    rule: str
    title: str
    child: str
    # The records in the window, in occurred_at order (ties in arrival order); the last one
    # to arrive triggered the flag.
    event_ids: tuple[str, ...]
    trigger_event_id: str
    # occurred_at of the triggering record: the flag's time in the brief's semantics.
    raised_at: datetime
    window_seconds: int
    # A household rule's flag: the household's keyed hash (household_key); its event_ids
    # are then the child's and the household's records in the window.
    household: str | None = None
    # The flag service takes this flag back once every record in event_ids is withdrawn: it
    # stops blocking its rule (it kept the fire's records, as it has since 2026-12-07).
    # False on a flag an older service raised: that one blocks until its window ends.
    withdrawable: bool = False
