"""The fields a delivery shared, read back from its view: the demo's "N fields" counts what
the child's disclosure log lists (the decision's ``fields_shared``), not the view's keys.

A view also carries the record's own metadata (id, type, sender, time: they always travel)
and a ``sharing`` block, and one shared field can travel as two keys (``subject.name`` as
``given_name`` and ``family_name``) or under its transform's name (``age_band``): counted
as keys, one referral read 16 fields in the demo and 9 in its log.
"""

from __future__ import annotations

from typing import Any

from broker.events import EVENT_FIELD_PATHS, FIELD_PATHS
from broker.policy import Policy
from broker.sdk import Delivery

# The keys a subject field travels under, plain or transformed (broker.policy's redact).
_SUBJECT_KEYS = {
    "given_name": "subject.name", "family_name": "subject.name", "initials": "subject.name",
    "name_pseudonym": "subject.name", "dob": "subject.dob", "age_band": "subject.dob",
    "year_of_birth": "subject.dob", "dob_pseudonym": "subject.dob",
    "postcode_district": "subject.postcode",
}  # fmt: skip
# Always in a view, shared or not: a clause naming them is the only sign they were shared.
_ALWAYS = ("event.type", "event.occurred_at")
_ORDER = {path: i for i, path in enumerate(FIELD_PATHS)}


def _subject_path(key: str) -> str:
    if key in _SUBJECT_KEYS:
        return _SUBJECT_KEYS[key]
    return f"subject.{key.removesuffix('_pseudonym')}"


def _event_path(key: str) -> str | None:
    path = f"event.{key.removesuffix('_pseudonym')}"
    return path if path in EVENT_FIELD_PATHS and path not in _ALWAYS else None


def shared_fields(delivery: Delivery, policy: Policy) -> tuple[str, ...]:
    """The field paths ``delivery`` shared, in the decisions' order (``subject.name``,
    ``event.summary``), as its disclosure log entry lists them."""
    view: dict[str, Any] = delivery.view
    paths = {_subject_path(k) for s in view.get("subjects", []) for k in s}
    paths |= {p for k in view if (p := _event_path(k)) is not None}
    named = {p for a in policy.bundle.agreements if a.id in delivery.agreements
             for c in a.clauses if c.id in delivery.clauses for p in c.share}  # fmt: skip
    paths |= named & set(_ALWAYS)
    # A key no path explains is still counted, under its own name: never silently dropped.
    return tuple(sorted(paths, key=lambda p: (_ORDER.get(p, len(_ORDER)), p)))
