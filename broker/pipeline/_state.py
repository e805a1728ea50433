"""The worker's state, kept in memory and made durable as a compacted changelog topic.

Every change is a ``(key, value)`` entry the processor writes to ``accord.worker.state``
in the same Kafka transaction as the outputs that caused it, so after a crash the state
rebuilt from the changelog matches exactly what was committed. Keys:

- ``r:<event id>`` — an event (or consent record, or acknowledgement) already processed;
- ``c:<subject key>`` — the consent records filed for a subject (sealed: they carry the
  identifiers the policy engine matches on);
- ``s:<subject key>`` — which recipients received that subject's records under consent, and
  for which purpose and event, so a withdrawal can tell them to stop;
- ``h:<chain>`` — the head of an audit chain (seq and hash), to resume after a restart;
- ``o:<topic>:<partition>`` — the next input offset to process there: the consumed offsets,
  committed with the outputs they produced.

Every entry carries a MAC (header ``accord-state-mac``: HMAC-SHA256 over its key and value as
written, under a key derived from the linkage key, which only the worker and console hold),
so a restore takes only what the worker itself wrote (``_restore``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from dataclasses import dataclass
from typing import Final

from broker.events import ConsentRecord
from broker.pipeline._effects import (
    ConsentShare,
    FileConsent,
    MarkProcessed,
    NoteShare,
    SetHead,
    SetOffset,
    SetShares,
    StateChange,
)

STATE_MAC_HEADER: Final = "accord-state-mac"


def state_mac_key(linkage_key: bytes) -> bytes:
    """The state MAC key: derived apart from subject keys and pseudonyms."""
    return hmac.new(linkage_key, b"accord/worker-state/v1", hashlib.sha256).digest()


def state_mac(mac_key: bytes, key: bytes, value: bytes) -> bytes:
    """HMAC-SHA256 over the entry's key (length-prefixed) and value, exactly as written."""
    return hmac.digest(mac_key, struct.pack(">I", len(key)) + key + value, "sha256")


@dataclass(frozen=True, slots=True)
class StateEntry:
    key: str
    value: bytes
    sensitive: bool = False  # sealed to the worker before it is written to Kafka


class WorkerState:
    """Replay ids, consent by subject, consent-based shares by subject, chain heads, offsets.

    Stages read it; only :meth:`change` (called by the ``Outbox``) and :meth:`restore` (from
    the changelog at start-up) alter it.
    """

    def __init__(self) -> None:
        self.processed: set[str] = set()
        self.consents: dict[str, list[ConsentRecord]] = {}
        self.shares: dict[str, list[ConsentShare]] = {}
        self.heads: dict[str, tuple[int, str]] = {}
        self.offsets: dict[tuple[str, int], int] = {}

    def change(self, c: StateChange) -> StateEntry:
        """Apply one change; return the changelog entry that makes it durable."""
        match c:
            case MarkProcessed(event_id):
                self.processed.add(event_id)
                return StateEntry(f"r:{event_id}", b"1")
            case FileConsent(key, record):
                records = [*self.consents.get(key, []), record]
                self.consents[key] = records
                value = json.dumps([r.model_dump(mode="json") for r in records]).encode()
                return StateEntry(f"c:{key}", value, sensitive=True)
            case NoteShare(key, share):
                return self._set_shares(key, [*self.shares.get(key, []), share])
            case SetShares(key, shares):
                return self._set_shares(key, list(shares))
            case SetHead(chain, seq, digest):
                self.heads[chain] = (seq, digest)
                value = json.dumps({"seq": seq, "hash": digest}).encode()
                return StateEntry(f"h:{chain}", value)
            case SetOffset(topic, partition, offset):
                self.offsets[(topic, partition)] = offset
                return StateEntry(f"o:{topic}:{partition}", str(offset).encode())
        raise AssertionError(f"unknown state change {c!r}")  # pragma: no cover  # exhaustive

    def _set_shares(self, key: str, shares: list[ConsentShare]) -> StateEntry:
        if shares:
            self.shares[key] = shares
        else:
            self.shares.pop(key, None)
        return StateEntry(f"s:{key}", json.dumps([_share_dict(s) for s in shares]).encode())

    # -- restore ---------------------------------------------------------------------------

    def restore(self, key: str, value: bytes) -> None:
        """Replay one changelog entry (already opened when sensitive); later entries win."""
        kind, _, ident = key.partition(":")
        if kind == "r":
            self.processed.add(ident)
        elif kind == "c":
            self.consents[ident] = [ConsentRecord.model_validate(r) for r in json.loads(value)]
        elif kind == "s":
            shares = [ConsentShare(**s) for s in json.loads(value)]
            if shares:
                self.shares[ident] = shares
            else:
                self.shares.pop(ident, None)
        elif kind == "h":
            head = json.loads(value)
            self.heads[ident] = (int(head["seq"]), str(head["hash"]))
        elif kind == "o":
            topic, _, partition = ident.rpartition(":")
            self.offsets[(topic, int(partition))] = int(value)

    # -- queries ---------------------------------------------------------------------------

    def consents_for(self, subject_keys: tuple[str, ...]) -> list[ConsentRecord]:
        seen: list[ConsentRecord] = []
        for key in subject_keys:
            for record in self.consents.get(key, ()):
                if record not in seen:
                    seen.append(record)
        return seen


def _share_dict(share: ConsentShare) -> dict[str, str]:
    return {
        "recipient": share.recipient,
        "recipient_kind": share.recipient_kind,
        "purpose": share.purpose,
        "event_id": share.event_id,
    }
