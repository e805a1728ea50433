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
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from broker.events import ConsentRecord


@dataclass(frozen=True, slots=True)
class StateEntry:
    key: str
    value: bytes
    sensitive: bool = False  # sealed to the worker before it is written to Kafka


@dataclass(frozen=True, slots=True)
class ConsentShare:
    """A delivery made on the strength of consent."""

    recipient: str
    recipient_kind: str
    purpose: str
    event_id: str


class WorkerState:
    """Replay ids, consent by subject, consent-based shares by subject, and audit chain heads."""

    def __init__(self) -> None:
        self.processed: set[str] = set()
        self.consents: dict[str, list[ConsentRecord]] = {}
        self.shares: dict[str, list[ConsentShare]] = {}
        self.heads: dict[str, tuple[int, str]] = {}
        self.offsets: dict[tuple[str, int], int] = {}

    # -- changes (each returns the changelog entry to write) -----------------------------

    def mark_processed(self, event_id: str) -> StateEntry:
        self.processed.add(event_id)
        return StateEntry(f"r:{event_id}", b"1")

    def file_consent(self, subject_key: str, record: ConsentRecord) -> StateEntry:
        records = [*self.consents.get(subject_key, []), record]
        self.consents[subject_key] = records
        value = json.dumps([r.model_dump(mode="json") for r in records]).encode()
        return StateEntry(f"c:{subject_key}", value, sensitive=True)

    def note_share(self, subject_key: str, share: ConsentShare) -> StateEntry:
        shares = [*self.shares.get(subject_key, []), share]
        self.shares[subject_key] = shares
        value = json.dumps([_share_dict(s) for s in shares]).encode()
        return StateEntry(f"s:{subject_key}", value)

    def clear_shares(self, subject_key: str) -> StateEntry:
        self.shares.pop(subject_key, None)
        return StateEntry(f"s:{subject_key}", b"[]")

    def set_head(self, chain: str, seq: int, digest: str) -> StateEntry:
        self.heads[chain] = (seq, digest)
        return StateEntry(f"h:{chain}", json.dumps({"seq": seq, "hash": digest}).encode())

    def set_offset(self, topic: str, partition: int, offset: int) -> StateEntry:
        self.offsets[(topic, partition)] = offset
        return StateEntry(f"o:{topic}:{partition}", str(offset).encode())

    # -- restore ---------------------------------------------------------------------------

    def apply(self, key: str, value: bytes) -> None:
        """Replay one changelog entry (already opened when sensitive); later entries win."""
        kind, _, ident = key.partition(":")
        if kind == "r":
            self.processed.add(ident)
        elif kind == "c":
            self.consents[ident] = [ConsentRecord.model_validate(r) for r in json.loads(value)]
        elif kind == "s":
            self.shares[ident] = [ConsentShare(**s) for s in json.loads(value)]
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
