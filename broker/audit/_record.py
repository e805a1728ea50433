"""The audit record: one line of the tamper-evident log.

Audit records hold subject keys, party ids, clause ids and field *names* — never a personal
value. ``data`` is kind-specific and restricted to JSON scalars and lists/objects of them; the
pipeline builds it from decisions, never from an event's free text. The encoding and the hash
are specified in ``schemas/audit-chain.md``.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
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
    QUARANTINE_OPENED = "quarantine_opened"
    KEYS_LOADED = "keys_loaded"


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


# schemas/audit-chain.md §2: "RFC 3339 date-time in UTC, written with Z".
_AT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z\Z")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("an audit record has a member twice")
    return out


def read_record(raw: bytes | str) -> AuditRecord:
    """One record from its bytes, exactly as schemas/audit-chain.md §2 types it.

    Every reader of the log (the indexer, ``verify``, the appenders) parses with this, so that
    Accord takes exactly the records a strict verifier working from the schema alone takes:
    pydantic would otherwise read ``"seq": "1"``, a boolean, an ``at`` with an offset or
    ``.000``, or a member given twice, and §4's hash over the model's own dump would then
    vouch for a record the schema calls invalid. ``ValueError`` (pydantic's
    ``ValidationError`` is one) when the bytes are not such a record.
    """
    rec = AuditRecord.model_validate_json(raw, strict=True)
    parsed = json.loads(raw, object_pairs_hook=_no_duplicates)
    if parsed != rec.model_dump(mode="json") or not _AT.match(parsed["at"]):
        raise ValueError("not an audit record as schemas/audit-chain.md §2 types it")
    return rec


# Domain-separated so an audit hash can never be confused with any other SHA-256 we make.
RECORD_DOMAIN = b"accord/audit/v1\x00"


def record_hash(body: dict[str, Any]) -> str:
    """SHA-256 over the domain label and the JCS of ``body``, in lowercase hex.

    JCS (RFC 8785) rather than Accord's own canonical JSON, so that an auditor can recompute
    the hash with any RFC 8785 implementation and ``schemas/audit-chain.md`` alone.
    """
    return hashlib.sha256(RECORD_DOMAIN + rfc8785.dumps(body)).hexdigest()
