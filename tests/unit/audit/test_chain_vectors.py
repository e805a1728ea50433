"""The audit chain vectors, checked as an auditor in another organisation would check them:
the standard library, cryptography's Ed25519 and an RFC 8785 canonicaliser, no Accord code.

``_verify`` is written from ``schemas/audit-chain.md`` §6 alone. The last tests hold Accord's
own verification (``verify_chain``, ``may_write``, ``verify_truncation``) to the same verdicts.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

VECTORS = Path(__file__).resolve().parents[3] / "schemas" / "vectors" / "audit-chain-v1.json"
DOC = json.loads(VECTORS.read_text("utf-8"))
RECORD_DOMAIN = b"accord/audit/v1\x00"
CHECKPOINT_DOMAIN = b"accord/audit-checkpoint/v1\x00"
GENESIS = "0" * 64
WRITER_KINDS = {  # §3
    "worker": {"received", "decided", "delivered", "quarantined", "consent_recorded",
               "consent_refused", "consent_withdrawn_notice", "policy_loaded", "opened",
               "policy_impact", "checkpoint"},
    "console": {"console_query", "override_reviewed", "quarantine_opened", "checkpoint"},
}  # fmt: skip


@dataclass(frozen=True)
class Verdict:
    why: str | None  # the first rule broken, or None
    seq: int | None  # where it broke
    verified_through: int | None  # the newest checkpoint's seq: what the chain proves


def _fingerprint(public: bytes) -> str:
    """The key id of an Ed25519 key (envelope §3), so a directory entry cannot lie about it."""
    data = b"accord/key-id/v1\x00" + bytes([len(b"ed25519")]) + b"ed25519" + public
    return hashlib.sha256(data).digest()[:16].hex()


def _record_hash(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(RECORD_DOMAIN + rfc8785.dumps(body)).hexdigest()


def _checkpoint_fault(record: dict[str, Any], prev_hash: str, keys: dict[str, Any]) -> str | None:
    """§6 step 6: why a checkpoint does not vouch for the chain before it, or None."""
    data, writer = record["data"], record["chain"].partition(":")[0]
    if data["covers_seq"] != record["seq"] - 1 or data["covers_hash"] != prev_hash:
        return "checkpoint does not cover the record before it"
    key = keys.get(data["key_id"])
    if key is None or key["party"] != writer or key["purpose"] != "sign":
        return "checkpoint key is not a signing key of the chain's writer"
    if key["status"] == "revoked":
        return "checkpoint key is revoked"
    message = CHECKPOINT_DOMAIN + rfc8785.dumps(
        {"chain": record["chain"], "seq": data["covers_seq"], "hash": data["covers_hash"]}
    )
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(key["public"]))
    try:
        public.verify(base64.b64decode(data["signature"], validate=True), message)
    except InvalidSignature:
        return "checkpoint signature does not verify"
    return None


def _record_fault(rec: dict[str, Any], chain: str, position: int, prev: str) -> str | None:
    """§6 rules 1 to 5: why the record does not belong where it is, or None."""
    if rec["chain"] != chain:
        return "record of another chain"
    if rec["seq"] != position:
        return "sequence number out of order"
    if rec["prev_hash"] != prev:
        return "prev_hash does not link to the record before"
    if _record_hash(rec) != rec["hash"]:
        return "record content does not match its hash"
    if rec["kind"] not in WRITER_KINDS.get(chain.partition(":")[0], set()):
        return "kind not written by the chain's writer"
    return None


def _verify(
    records: list[dict[str, Any]], directory: list[dict[str, Any]], known_head: dict[str, Any]
) -> Verdict:
    """Verify one chain as schemas/audit-chain.md §6 says; stop at the first broken rule."""
    keys = {k["key_id"]: k for k in directory if _fingerprint(base64.b64decode(k["public"]))
            == k["key_id"]}  # fmt: skip
    chain = known_head["chain"]
    prev, verified = GENESIS, None
    pending: tuple[str, int] | None = None  # rule 7a: a checkpoint no valid one covers yet
    for position, rec in enumerate(records):
        fault = _record_fault(rec, chain, position, prev)
        if fault is not None:  # the first fault is an uncovered checkpoint before it, if any
            return Verdict(*(pending or (fault, position)), None if pending else verified)
        if rec["kind"] == "checkpoint":
            # Rule 6: one that does not verify vouches for nothing, a fault only if no
            # valid checkpoint follows it (rule 7a).
            why = _checkpoint_fault(rec, prev, keys)
            if why is None:
                verified, pending = rec["seq"], None
            elif pending is None:
                pending = (why, position)
        prev = rec["hash"]
    if pending is not None:
        return Verdict(*pending, None)
    head = len(records) - 1
    if verified is None:
        return Verdict("chain has no valid checkpoint", None, None)
    if head < known_head["seq"]:
        return Verdict("chain ends before the known head", head + 1, verified)
    if records[known_head["seq"]]["hash"] != known_head["hash"]:
        return Verdict("chain differs from the known head", known_head["seq"], verified)
    return Verdict(None, None, verified)


VALID = DOC["valid"]["records"]
KEYS = DOC["keys"]
HEAD = DOC["known_head"]
CASES = [{"name": "valid", "why": None, "seq": None, "records": VALID}, *DOC["invalid"]]


def test_the_valid_chain_verifies_up_to_its_final_checkpoint() -> None:
    assert _verify(VALID, KEYS, HEAD) == Verdict(None, None, 6)


def test_each_record_hashes_and_each_checkpoint_signs_the_published_bytes() -> None:
    for rec, step in zip(VALID, DOC["valid"]["steps"], strict=True):
        body = {k: v for k, v in rec.items() if k != "hash"}
        hashed = RECORD_DOMAIN + rfc8785.dumps(body)
        assert hashed.hex() == step["hash_input_hex"]
        assert hashlib.sha256(hashed).hexdigest() == step["hash"] == rec["hash"]
        if rec["kind"] == "checkpoint":
            d = rec["data"]
            message = CHECKPOINT_DOMAIN + rfc8785.dumps(
                {"chain": rec["chain"], "seq": d["covers_seq"], "hash": d["covers_hash"]}
            )
            assert message.hex() == step["signing_input_hex"]
    assert [s["seq"] for s in DOC["valid"]["steps"] if "signing_input_hex" in s] == [4, 6]


def test_a_retired_key_still_vouches_for_the_checkpoint_it_signed() -> None:
    signer = VALID[4]["data"]["key_id"]
    assert next(k["status"] for k in KEYS if k["key_id"] == signer) == "retired"


@pytest.mark.parametrize("case", DOC["invalid"], ids=lambda c: c["name"])
def test_each_invalid_chain_is_refused_for_its_reason_at_its_record(case: dict[str, Any]) -> None:
    verdict = _verify(case["records"], KEYS, HEAD)
    assert (verdict.why, verdict.seq) == (case["why"], case["seq"])


def test_a_chain_cut_after_a_checkpoint_proves_only_what_that_checkpoint_covers() -> None:
    """Without a saved head the truncated chain breaks no rule, yet vouches only up to seq 4:
    record 5 is unverified, and only the known head shows that seq 6 is missing."""
    truncated = next(c for c in DOC["invalid"] if c["name"] == "truncated")["records"]
    short_head = {"chain": HEAD["chain"], "seq": 0, "hash": VALID[0]["hash"]}
    assert _verify(truncated, KEYS, short_head) == Verdict(None, None, 4)
    assert _verify(truncated, KEYS, HEAD).verified_through == 4


def test_a_chain_without_a_checkpoint_proves_nothing() -> None:
    short_head = {"chain": HEAD["chain"], "seq": 0, "hash": VALID[0]["hash"]}
    assert _verify(VALID[:4], KEYS, short_head) == Verdict(
        "chain has no valid checkpoint", None, None
    )


def test_the_vectors_are_what_the_generator_writes() -> None:
    from broker.audit.vectors import generate

    assert generate() == DOC


class _Directory:
    """The vectors' keys as a key resolver: what KeystoreAuditVerifier looks keys up in."""

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        from broker.envelope import KeyAlg, KeyInfo, KeyStatus

        self._keys = {
            e["key_id"]: KeyInfo(
                e["key_id"], e["party"], KeyAlg(e["alg"]), base64.b64decode(e["public"]),
                datetime.fromisoformat(e["created_at"]), KeyStatus(e["status"]),
            )
            for e in entries
        }  # fmt: skip

    def public_key(self, key_id: str) -> Any:
        return self._keys.get(key_id)


def _accords_verdict(records: list[dict[str, Any]]) -> tuple[bool, int | None]:
    """Accord's verification of a chain: (ok, seq of the first fault)."""
    from broker.audit import (
        AuditKind,
        AuditRecord,
        KeystoreAuditVerifier,
        may_write,
        verify_chain,
        verify_truncation,
    )
    from broker.errors import ChainBroken

    parsed = [AuditRecord.model_validate(r) for r in records]
    try:
        report = verify_chain(
            parsed,
            KeystoreAuditVerifier(_Directory(KEYS)),  # type: ignore[arg-type]  # lookups only
            expect_chain=HEAD["chain"],
        )
        # verify_chain leaves the writer's kinds to its caller (the indexer, by may_write).
        wrong = [r.seq for r in parsed if not may_write(r.chain, AuditKind(r.kind))]
        if wrong:
            return False, wrong[0]
        verify_truncation(report, HEAD["seq"])
    except ChainBroken as err:
        return False, err.seq
    return True, None


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
def test_accords_own_verification_agrees_with_the_independent_one(case: dict[str, Any]) -> None:
    independent = _verify(case["records"], KEYS, HEAD)
    assert _accords_verdict(case["records"]) == (independent.why is None, independent.seq)
    assert (independent.why, independent.seq) == (case["why"], case["seq"])


def test_a_revoked_checkpoint_a_valid_one_follows_vouches_for_nothing_but_is_no_fault() -> None:
    """§6 rule 7a: a key rotated out and then revoked; the next checkpoint, by a live key,
    commits through the hash links to everything before it, the revoked checkpoint included."""
    from broker.audit import vectors

    revoked = vectors._key("worker-2025", "worker", status="revoked")
    records = vectors._chain(revoked, vectors._key("worker-2026b", "worker"))
    head = {"chain": HEAD["chain"], "seq": 6, "hash": records[6]["hash"]}
    assert _verify(records, KEYS, head) == Verdict(None, None, 6)
    cut = _verify(records[:5], KEYS, head)
    assert (cut.why, cut.seq) == ("checkpoint key is revoked", 4)
    assert _accords_verdict(records[:6]) == (False, 4)  # nothing after it: a fault
