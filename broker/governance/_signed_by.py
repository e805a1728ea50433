"""Events accepted under one signing key, for a security incident: after a keystore theft,
"which events did the stolen key sign, and to whom did they go?" (``accord audit received
--signed-by``).

A ``received`` record names the key the envelope's signature verified under
(``signer_key_id``, since 2026-12-08); its event's deliveries are the ``delivered`` records
of that event on the same chain after it (one task wrote both, in one transaction; another
sender's event under the same id is on its own chain). A line holds ids, a time and an event
type: never a subject key, nor anything else of a child's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from broker.governance._grounds import str_or_none

if TYPE_CHECKING:
    from broker.governance._store import AuditStore, Window

_KEY_ID = re.compile(r"[0-9a-f]{32}")


def is_key_id(value: str) -> bool:
    """Whether ``value`` is a key id as the key directory writes it (32 lowercase hex)."""
    return _KEY_ID.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class SignedEvent:
    """One event the worker accepted under the key asked about."""

    event_id: str
    sender: str
    received_at: datetime
    event_type: str | None
    delivered_to: tuple[str, ...]  # recipients' party ids, in the order delivered
    audit: str  # the ``received`` record, ``chain#seq``


def events_signed_by(store: AuditStore, key_id: str, window: Window) -> list[SignedEvent]:
    """The events received in ``window`` whose envelopes verified under ``key_id``, oldest
    first, each with the parties it was delivered to. ``ValueError`` unless ``key_id`` is a
    key id (it goes into a LIKE pattern: hex has no wildcard)."""
    if not is_key_id(key_id):
        raise ValueError("a key id is 32 lowercase hex digits, as 'accord keys list' shows")
    received = store.received_signed_by(key_id, window)
    delivered = store.delivered_after([(r.chain, r.seq, r.event_id or "") for r in received])
    return [
        SignedEvent(
            event_id=r.event_id or "",
            sender=r.party or "",
            received_at=r.at,
            event_type=str_or_none(r.data.get("type")),
            delivered_to=delivered.get((r.chain, r.seq), ()),
            audit=f"{r.chain}#{r.seq}",
        )
        for r in received
    ]
