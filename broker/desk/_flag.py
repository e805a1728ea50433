"""What the flag service tells the desk: one raised flag, and how a child is keyed.

The contract between the faust flagging service (which raises flags) and the desk web app
(which shows them): both key a child the same way, with a secret local to the recipient
party, so a flag, its window table and the desk's timeline name a child only by a keyed hash.
The brief's rule: a child is keyed by NHS number; without one, by given name, family name and
date of birth. A household (children sharing an address) is keyed the same way, by address
and postcode.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Flag", "child_key", "flag_id", "household_key"]

_NOT_WORD = re.compile(r"[^0-9a-z]+")


def child_key(secret: bytes, subject: Mapping[str, Any]) -> str | None:
    """The desk's key for a child subject of a delivered view, or None if it cannot be keyed.

    Names are case-folded and trimmed, so "Ava " and "ava" are one child; a subject with
    neither an NHS number nor both names (strings) and a date of birth is not keyed (it
    raises nothing). Inner spacing and punctuation still count ("Mary  Ann" is not "Mary
    Ann"), where the broker's linkage ignores them: changing this re-keys every desk's stored
    children without an NHS number, which needs a migration of its store (a known gap).
    """
    nhs = subject.get("nhs_number")
    if nhs:
        material = f"nhs\x00{nhs}"
    else:
        given, family, dob = (subject.get(k) for k in ("given_name", "family_name", "dob"))
        if not (isinstance(given, str) and isinstance(family, str) and given and family and dob):
            return None
        material = f"demo\x00{given.strip().casefold()}\x00{family.strip().casefold()}\x00{dob}"
    return hmac.new(secret, material.encode(), hashlib.sha256).hexdigest()[:32]


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
    material = f"household\x00{street}\x00{code}"
    return hmac.new(secret, material.encode(), hashlib.sha256).hexdigest()[:32]


def flag_id(rule: str, child: str, trigger_event_id: str) -> str:
    """Deterministic: the same rule, child and triggering record always give the same id, so a
    flag raised again after a restart is recognisably the same flag, never a second one."""
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
