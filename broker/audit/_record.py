"""The audit record: one line of the tamper-evident log.

Audit records hold subject keys, party ids, clause ids and field *names* — never a personal
value. ``data`` is kind-specific and restricted to JSON scalars and lists/objects of them; the
pipeline builds it from decisions, never from an event's free text. The encoding and the hash
are specified in ``schemas/audit-chain.md``.
"""

from __future__ import annotations

import enum
import hashlib
from datetime import datetime
from typing import Any

import rfc8785
from pydantic import BaseModel, ConfigDict, Field

GENESIS = "0" * 64


class AuditKind(enum.StrEnum):
    RECEIVED = "received"
    DECIDED = "decided"
    DELIVERED = "delivered"
    QUARANTINED = "quarantined"
    CONSENT_RECORDED = "consent_recorded"
    CONSENT_REFUSED = "consent_refused"
    CONSENT_WITHDRAWN_NOTICE = "consent_withdrawn_notice"
    POLICY_LOADED = "policy_loaded"
    OPENED = "opened"
    CHECKPOINT = "checkpoint"
    CONSOLE_QUERY = "console_query"
    OVERRIDE_REVIEWED = "override_reviewed"
    POLICY_IMPACT = "policy_impact"


class AuditRecord(BaseModel):
    """One chained record. ``hash`` covers every other field (:func:`record_hash`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    chain: str = Field(min_length=1, max_length=200)
    seq: int = Field(ge=0)
    at: datetime
    kind: AuditKind
    event_id: str | None = None
    party: str | None = None  # the sender, recipient or actor the record is about
    subject_keys: tuple[str, ...] = ()
    data: dict[str, Any] = Field(default_factory=dict)
    prev_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")

    def body(self) -> dict[str, Any]:
        """Everything the hash covers (all fields but ``hash``) in JSON form."""
        return self.model_dump(mode="json", exclude={"hash"})

    def computed_hash(self) -> str:
        return record_hash(self.body())

    def to_bytes(self) -> bytes:
        """The record as it goes on the topic: RFC 8785 canonical JSON (JCS)."""
        return rfc8785.dumps(self.model_dump(mode="json"))


# Domain-separated so an audit hash can never be confused with any other SHA-256 we make.
RECORD_DOMAIN = b"accord/audit/v1\x00"


def record_hash(body: dict[str, Any]) -> str:
    """SHA-256 over the domain label and the JCS of ``body``, in lowercase hex.

    JCS (RFC 8785) rather than Accord's own canonical JSON, so that an auditor can recompute
    the hash with any RFC 8785 implementation and ``schemas/audit-chain.md`` alone.
    """
    return hashlib.sha256(RECORD_DOMAIN + rfc8785.dumps(body)).hexdigest()
