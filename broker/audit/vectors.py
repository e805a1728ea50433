"""Generate (or check) the audit chain test vectors: ``schemas/vectors/audit-chain-v1.json``.

``python -m broker.audit.vectors`` writes the file; ``--check`` only compares. Everything is
deterministic (keys derived from fixed labels, a fixed clock; Ed25519 signatures are
deterministic), so regenerating gives the same bytes. The valid chain is a worker's: an event
received, two decisions, a delivery, a checkpoint signed with the worker's previous (now
retired) key, an opening and a checkpoint signed with its current key. The invalid variants
each break one rule of ``schemas/audit-chain.md`` §6.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import rfc8785

from broker._vectors import vectors_main
from broker.audit._chain import CHECKPOINT_DOMAIN, ChainWriter, checkpoint_message
from broker.audit._record import GENESIS, RECORD_DOMAIN, AuditKind, record_hash
from broker.crypto import SigningKey
from broker.envelope import KeyAlg, compute_key_id

__all__ = ["generate", "main"]

_AT: Final = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
_PATH: Final = Path("schemas/vectors/audit-chain-v1.json")
_CHAIN: Final = "worker:vectors"
_EVENT: Final = "7d3f1c52-9a0e-4b8d-8f21-5c6e0a4b9d13"

Record = dict[str, Any]


def _material(label: str, n: int = 32) -> bytes:
    return hashlib.shake_256(f"accord audit chain vector/{label}".encode()).digest(n)


@dataclass(frozen=True)
class _Key:
    """A synthetic signing key and its public key directory entry."""

    signing: SigningKey
    entry: dict[str, Any]

    @property
    def key_id(self) -> str:
        return str(self.entry["key_id"])

    def sign(self, data: bytes) -> bytes:
        return self.signing.sign(data)


def _key(label: str, party: str, status: str = "active") -> _Key:
    signing = SigningKey.from_raw(_material(f"{label}/sign"))
    public = signing.public_raw()
    changed = None if status == "active" else (_AT + timedelta(hours=1)).isoformat()
    entry = {  # a key directory entry, schemas/key-directory.md §2
        "key_id": compute_key_id(KeyAlg.ED25519, public),
        "party": party,
        "purpose": "sign",
        "alg": "ed25519",
        "public": base64.b64encode(public).decode("ascii"),
        "created_at": (_AT - timedelta(days=30)).isoformat(),
        "status": status,
        "not_after": None,
        "status_changed_at": changed,
    }
    return _Key(signing, entry)


def _clock() -> Callable[[], datetime]:
    ticks: Iterator[int] = iter(range(1_000))
    return lambda: _AT + timedelta(seconds=next(ticks))


def _subject(label: str) -> str:
    return "n:" + _material(f"subject/{label}", 16).hex()


def _decided(outcome: str) -> dict[str, Any]:
    shared = outcome != "not_shared"
    return {
        "event_type": "police.domestic_incident",
        "sender": "wmp",
        "recipient_kind": "hub",
        "outcome": outcome,
        "reason": None if shared else "consent-missing",
        "clause_ids": ["isa-1/c1"] if shared else [],
        "agreement_id": "isa-1" if shared else None,
        "purpose": "early_help",
        "lawful_basis": {"article6": "public_task", "article9": "safeguarding_children"},
        "consent": "missing",
        "fields_shared": ["event.type", "subject.name"] if shared else [],
        "fields_withheld": ["subject.address"],
        "subjects": [0, 1],
        "review_required": False,
        "decided_at": _AT.isoformat(),
        "policy_version": "sha256:" + _material("policy").hex(),
    }


def _chain(cp_first: _Key, cp_last: _Key, sixth: AuditKind = AuditKind.OPENED) -> list[Record]:
    """The seven records of the valid chain; ``sixth`` swaps in another kind at seq 5."""
    w = ChainWriter(_CHAIN, clock=_clock())
    child, parent = _subject("child"), _subject("parent")
    encoded = [
        w.append_encoded(
            AuditKind.RECEIVED, event_id=_EVENT, party="wmp", subject_keys=[child, parent],
            data={"type": "police.domestic_incident", "subject_roles": {"child": 1, "parent": 1},
                  "topic": "accord.ingress.wmp", "partition": 0, "offset": 41,
                  "signer_key_id": _key("wmp", "wmp").key_id},
        ),
        w.append_encoded(AuditKind.DECIDED, event_id=_EVENT, party="coord",
                         subject_keys=[child, parent], data=_decided("shared")),
        w.append_encoded(AuditKind.DECIDED, event_id=_EVENT, party="hub-a",
                         subject_keys=[child, parent], data=_decided("not_shared")),
        w.append_encoded(
            AuditKind.DELIVERED, event_id=_EVENT, party="coord", subject_keys=[child, parent],
            data={"topic": "accord.deliver.coord", "outcome": "shared",
                  "fields": ["event.type", "subject.name"]},
        ),
        w.checkpoint(cp_first).to_bytes(),
        w.append_encoded(
            sixth, event_id=_EVENT, party="coord",
            data={"by": "coord/officer-zoë", "purpose": "early_help",
                  "at": (_AT + timedelta(hours=2)).isoformat()},
        ),
        w.checkpoint(cp_last).to_bytes(),
    ]  # fmt: skip
    return [json.loads(e) for e in encoded]


def _rehash(record: Record) -> None:
    # What a forger does after editing a record: anyone can recompute a hash.
    record["hash"] = record_hash({k: v for k, v in record.items() if k != "hash"})


def _resign(record: Record, key: _Key) -> None:
    data = record["data"]
    message = checkpoint_message(record["chain"], data["covers_seq"], data["covers_hash"])
    data["signature"] = base64.b64encode(key.sign(message)).decode("ascii")
    _rehash(record)


def _steps(records: list[Record]) -> list[dict[str, Any]]:
    """What an implementation computes for each record, to compare its own against."""
    out = []
    for r in records:
        body = {k: v for k, v in r.items() if k != "hash"}
        hashed = RECORD_DOMAIN + rfc8785.dumps(body)
        step: dict[str, Any] = {"seq": r["seq"], "hash": r["hash"], "hash_input_hex": hashed.hex()}
        if r["kind"] == AuditKind.CHECKPOINT.value:
            d = r["data"]
            message = checkpoint_message(r["chain"], d["covers_seq"], d["covers_hash"])
            step["signing_input_hex"] = message.hex()
        out.append(step)
    return out


def generate() -> dict[str, Any]:
    retired = _key("worker-2026a", "worker", status="retired")
    worker = _key("worker-2026b", "worker")
    compromised = _key("worker-2025", "worker", status="revoked")
    console = _key("console", "console")
    attacker = _key("attacker", "worker")  # never in the directory
    valid = _chain(retired, worker)
    head = valid[-1]

    def variant(name: str, why: str, seq: int, edit: Callable[[list[Record]], Any]) -> Record:
        records = copy.deepcopy(valid)
        edit(records)
        return {"name": name, "why": why, "seq": seq, "records": records}

    def modify(records: list[Record]) -> None:
        records[2]["data"]["outcome"] = "shared"  # a refusal made to look like a share

    def delete(records: list[Record]) -> None:
        del records[2]

    def swap(records: list[Record]) -> None:
        records[1], records[2] = records[2], records[1]

    def forge(records: list[Record]) -> None:
        _resign(records[-1], attacker)  # keeps the worker's key id

    def console_signs(records: list[Record]) -> None:
        records[-1]["data"]["key_id"] = console.key_id
        _resign(records[-1], console)

    def revoked_signs(records: list[Record]) -> None:
        records[-1]["data"]["key_id"] = compromised.key_id
        _resign(records[-1], compromised)

    def truncate(records: list[Record]) -> None:
        del records[-1]

    wrong_kind = {
        "name": "kind-the-writer-may-not-write",
        "why": "kind not written by the chain's writer",
        "seq": 5,
        "records": _chain(retired, worker, sixth=AuditKind.OVERRIDE_REVIEWED),
    }
    return {
        "description": "Accord audit chain v1 test vectors (schemas/audit-chain.md). Synthetic "
        "keys, derived from fixed labels, and synthetic records; no real party or person.",
        "record_domain_hex": RECORD_DOMAIN.hex(),
        "checkpoint_domain_hex": CHECKPOINT_DOMAIN.hex(),
        "genesis": GENESIS,
        "keys": [k.entry for k in (worker, retired, compromised, console)],
        "known_head": {"chain": _CHAIN, "seq": head["seq"], "hash": head["hash"]},
        "valid": {"chain": _CHAIN, "records": valid, "steps": _steps(valid)},
        "invalid": [
            variant("modified-record", "record content does not match its hash", 2, modify),
            variant("deleted-record", "sequence number out of order", 2, delete),
            variant("swapped-records", "sequence number out of order", 1, swap),
            variant("forged-checkpoint-signature", "checkpoint signature does not verify", 6,
                    forge),
            variant("checkpoint-signed-by-another-principal",
                    "checkpoint key is not a signing key of the chain's writer", 6,
                    console_signs),
            variant("checkpoint-signed-by-a-revoked-key", "checkpoint key is revoked", 6,
                    revoked_signs),
            wrong_kind,
            variant("truncated", "chain ends before the known head", 6, truncate),
        ],
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    return vectors_main("python -m broker.audit.vectors", _PATH, generate, argv)


if __name__ == "__main__":
    raise SystemExit(main())
