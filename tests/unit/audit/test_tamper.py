"""`accord audit verify --db`: every kind of tampering with an index copy is caught and named.

Each tamper is what an attacker with write access to the database would do, covering tracks
where they can (recomputing hashes, renumbering, moving the indexed head back); the signed
checkpoint reference and the hash chain still give them away. Run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from broker.audit import AuditKind, AuditRecord, record_hash
from broker.governance import AuditStore
from tests.unit.audit.conftest import Run

Tamper = Callable[[Any, list[AuditRecord]], int]  # returns the seq verify must name

CHAIN = "worker:w1"


def _q(store: AuditStore, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    return store._q(sql, params)  # type: ignore[attr-defined,no-any-return]  # raw SQL, as an attacker would


def _put(store: AuditStore, rec: dict[str, Any], offset: int = 0) -> None:
    """Write a record body (and consistent columns) at its seq, replacing what is there."""
    from broker.governance._store import IndexBatch, IndexedRecord

    _q(store, "DELETE FROM audit_records WHERE chain = ? AND seq = ?", (CHAIN, rec["seq"]))
    parsed = AuditRecord.model_validate(rec)
    store.apply(IndexBatch("x", records=[IndexedRecord(parsed, 0, offset)]))


def _rehash(body: dict[str, Any]) -> dict[str, Any]:
    body = dict(body)
    body.pop("hash", None)
    body["hash"] = record_hash(body)
    return body


def modify(store: AuditStore, records: list[AuditRecord]) -> int:
    target = next(r for r in records if r.kind is AuditKind.DECIDED and r.party == "hub-a")
    body = json.loads(target.to_bytes())
    body["data"]["outcome"] = "shared"  # hash left alone: the content no longer matches
    _q(store, "UPDATE audit_records SET body = ?, outcome = ? WHERE chain = ? AND seq = ?",
       (json.dumps(body), "shared", CHAIN, target.seq))  # fmt: skip
    return target.seq


def modify_column(store: AuditStore, records: list[AuditRecord]) -> int:
    """Changing only a query column (what reports read) is caught too."""
    target = next(r for r in records if r.kind is AuditKind.DECIDED and r.party == "hub-a")
    _q(store, "UPDATE audit_records SET outcome = 'shared' WHERE chain = ? AND seq = ?",
       (CHAIN, target.seq))  # fmt: skip
    return target.seq


def delete(store: AuditStore, records: list[AuditRecord]) -> int:
    _q(store, "DELETE FROM audit_records WHERE chain = ? AND seq = ?", (CHAIN, 4))
    return 4


def insert(store: AuditStore, records: list[AuditRecord]) -> int:
    """Slip a well-formed record in at seq 3, renumbering (and re-hashing) everything after."""
    k = 3
    later = [json.loads(r.to_bytes()) for r in records[k:]]
    _q(store, "DELETE FROM audit_records WHERE chain = ? AND seq >= ?", (CHAIN, k))
    forged = json.loads(records[k].to_bytes())
    forged["party"] = "hub-b"
    forged["prev_hash"] = records[k - 1].hash
    _put(store, _rehash(forged))
    for body in later:
        body["seq"] += 1
        _put(store, _rehash(body))
    _q(store, "UPDATE chain_heads SET seq = seq + 1 WHERE chain = ?", (CHAIN,))
    return k


def reorder(store: AuditStore, records: list[AuditRecord]) -> int:
    """Swap two records' contents, renumbered to fit their new places."""
    a, b = (json.loads(r.to_bytes()) for r in records[2:4])
    a["seq"], b["seq"] = 3, 2
    _put(store, _rehash(b))
    _put(store, _rehash(a))
    return 2


def truncate(store: AuditStore, records: list[AuditRecord]) -> int:
    """Cut the newest records, the last signed checkpoint among them, and move the head back."""
    cut = max(r.seq for r in records if r.kind is AuditKind.CHECKPOINT) - 1
    _q(store, "DELETE FROM audit_records WHERE chain = ? AND seq >= ?", (CHAIN, cut))
    _q(store, "UPDATE chain_heads SET seq = ?, hash = ? WHERE chain = ?",
       (cut - 1, records[cut - 1].hash, CHAIN))  # fmt: skip
    return cut


def truncate_all(store: AuditStore, records: list[AuditRecord]) -> int:
    _q(store, "DELETE FROM audit_records")
    _q(store, "DELETE FROM chain_heads")
    return 0


def append(store: AuditStore, records: list[AuditRecord]) -> int:
    """A well-linked record added after the newest one: beyond what the indexer reached."""
    body = json.loads(records[-1].to_bytes())
    body.update(seq=body["seq"] + 1, prev_hash=records[-1].hash, party="hub-b")
    _put(store, _rehash(body))
    return body["seq"]


def append_past_the_signed_head(store: AuditStore, records: list[AuditRecord]) -> int:
    """The same, with the indexed head moved on to it: a record no writer ever signed (an
    override's review, say, taking it off the queue)."""
    record = next(r for r in reversed(records) if r.kind is not AuditKind.CHECKPOINT)
    body = json.loads(record.to_bytes())
    body.update(seq=records[-1].seq + 1, prev_hash=records[-1].hash, party="hub-b")
    body = _rehash(body)
    _put(store, body)
    _q(store, "UPDATE chain_heads SET seq = ?, hash = ? WHERE chain = ?",
       (body["seq"], body["hash"], CHAIN))  # fmt: skip
    return int(body["seq"])


@pytest.mark.parametrize(
    "tamper",
    [modify, modify_column, delete, insert, reorder, truncate, truncate_all, append,
     append_past_the_signed_head],
)  # fmt: skip
def test_verify_fails_naming_the_first_bad_record(
    tamper: Tamper, store: AuditStore, indexed: list[AuditRecord], audit_db_url: str, run_cli: Run
) -> None:
    bad_seq = tamper(store, indexed)
    code, out, err = run_cli(["audit", "verify", "--db", audit_db_url])
    assert code == 1
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    assert f"audit chain '{CHAIN}' broken at seq {bad_seq}:" in lines[0]


def test_an_untouched_index_verifies_with_a_one_line_summary(
    store: AuditStore, indexed: list[AuditRecord], audit_db_url: str, run_cli: Run
) -> None:
    code, out, err = run_cli(["audit", "verify", "--db", audit_db_url])
    assert (code, err) == (0, "")
    assert out.strip() == (
        f"audit log intact ({store.backend}): {len(indexed)} records in 1 chain, "
        "1 with a verified signed checkpoint. Every chain in the index verifies as far as it "
        "goes; 1 chain is not yet vouched for by a signed verification, so records removed "
        "from its end, or a whole chain, would not show yet: run 'accord audit verify "
        "--from-topic' (and --db) to check it against Kafka"
    )


def test_a_forged_checkpoint_reference_is_refused(
    store: AuditStore, indexed: list[AuditRecord], audit_db_url: str, run_cli: Run
) -> None:
    """The reference cannot be moved back by rewriting it: its signature would not verify."""
    body = json.loads(_q(store, "SELECT body FROM chain_checkpoints")[0][0])
    body["data"]["covers_seq"] = 3
    _q(store, "UPDATE chain_checkpoints SET body = ?", (json.dumps(_rehash(body)),))
    code, _, err = run_cli(["audit", "verify", "--db", audit_db_url])
    assert code == 1
    assert "checkpoint reference" in err


def test_an_edited_record_body_is_named_as_content_not_matching_its_hash(
    store: AuditStore, indexed: list[AuditRecord], audit_db_url: str, run_cli: Run
) -> None:
    """Only the stored body edited (its mirror column left alone): the signed record changed,
    which the hash says, rather than the column cross-check's symptom."""
    target = next(r for r in indexed if r.kind is AuditKind.DECIDED and r.party == "hub-a")
    body = json.loads(target.to_bytes())
    body["data"]["outcome"] = "shared"
    _q(store, "UPDATE audit_records SET body = ? WHERE chain = ? AND seq = ?",
       (json.dumps(body), CHAIN, target.seq))  # fmt: skip
    code, _, err = run_cli(["audit", "verify", "--db", audit_db_url])
    assert code == 1
    assert err.strip().endswith(
        f"broken at seq {target.seq}: record content does not match its hash"
    ), err


def test_a_tail_cut_inside_the_signed_references_coverage_is_truncation(
    store: AuditStore, indexed: list[AuditRecord], audit_db_url: str, run_cli: Run
) -> None:
    """Records cut from between two checkpoints to the end leave a tail past the older
    checkpoint: the newest signed checkpoint, kept apart, says the chain was cut short."""
    cps = [r.seq for r in indexed if r.kind is AuditKind.CHECKPOINT]
    cut = cps[-2] + 2  # keeps one record after the second newest checkpoint
    _q(store, "DELETE FROM audit_records WHERE chain = ? AND seq >= ?", (CHAIN, cut))
    _q(store, "UPDATE chain_heads SET seq = ?, hash = ? WHERE chain = ?",
       (cut - 1, indexed[cut - 1].hash, CHAIN))  # fmt: skip
    code, _, err = run_cli(["audit", "verify", "--db", audit_db_url])
    assert code == 1
    assert f"broken at seq {cut}: chain ends at seq {cut - 1} but a signed checkpoint covers" in err
