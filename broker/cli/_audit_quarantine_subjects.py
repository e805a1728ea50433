"""The subject keys of the children an opened quarantine copy names, for its
``quarantine_opened`` record: the opening discloses them, so a subject access request must
list it (``subject_lookups``), and the worker's ``quarantined`` record names no one.

A quarantined record may be anything (malformed, truncated, not an event at all), so the
copy's value is read leniently: each subject's NHS number, and its name and date of birth
(with the postcode where it validates), are taken each only where they validate as an event's
subject's do, and keyed as the worker keys them (:class:`~broker.linkage.Linker`, the linkage
key). A sealed envelope's content is the worker's to open, not the officer's: it names no one
here. Nothing read is ever returned or shown but the keys.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from broker.events import Subject
from broker.linkage import Linker, Unlinkable

#: Where subjects sit: a contact event's ``subjects``, a consent record's ``subject``.
_LISTS, _ONE = "subjects", "subject"
_DEMOGRAPHICS = ("given_name", "family_name", "dob")


def copy_subject_keys(payload: dict[str, Any], linkage_key: bytes) -> tuple[str, ...]:
    """Every subject key of every child the copy's value names; () when it names none that
    validates (or is no JSON object: a truncated or sealed value)."""
    raw = payload.get("value")
    if not isinstance(raw, str):
        return ()
    try:
        doc = json.loads(base64.b64decode(raw, validate=True))
    except (binascii.Error, ValueError, RecursionError):
        return ()
    if not isinstance(doc, dict):
        return ()
    named = doc.get(_LISTS)
    found = list(named) if isinstance(named, list) else []
    if isinstance(doc.get(_ONE), dict):
        found.append(doc[_ONE])
    linker, now = Linker(linkage_key), datetime.now(UTC)
    keys: dict[str, None] = {}  # ordered, once each
    for subject in found:
        if isinstance(subject, dict):
            keys.update(dict.fromkeys(_keys_of(subject, linker, now)))
    return tuple(keys)


def _keys_of(given: dict[str, Any], linker: Linker, now: datetime) -> list[str]:
    keys: list[str] = []
    if (nhs := _valid(given, ("nhs_number",), now)) is not None and nhs.nhs_number:
        keys.append(linker.from_nhs_number(nhs.nhs_number))
    # With the postcode first, then without it where it does not validate: the SAR searches
    # by name under the key with it, and under the one without (lookup_keys).
    named = _valid(given, (*_DEMOGRAPHICS, "postcode"), now) or _valid(given, _DEMOGRAPHICS, now)
    if named is not None:
        try:
            demo = linker.lookup_keys(named)
        except Unlinkable:  # a name with no letter: no one to link to
            demo = ()
        # The older spelling's key is shared by "Twin 1" and "Twin 2": never filed anew.
        legacy = linker.legacy_key(named)
        keys += [k for k in demo if k != legacy or k == demo[0]]
    return keys


def _valid(given: dict[str, Any], fields: tuple[str, ...], now: datetime) -> Subject | None:
    """The subject of only these fields, all present and valid as an event's; else None."""
    if any(given.get(f) is None for f in fields):
        return None
    try:
        return Subject.model_validate(
            {"role": "child", **{f: given[f] for f in fields}}, context={"now": now}
        )
    except (ValidationError, ValueError, TypeError):
        return None
