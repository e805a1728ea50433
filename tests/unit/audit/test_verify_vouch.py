"""A chain deleted from every table of an index is still caught: by the heads an earlier
verification's signed record vouches for, and, with ``--from-topic --db``, by the topic.

Each deletion is what the IG review did to a copy of ``audit.db``: every row of one chain
removed from ``audit_records``, ``chain_heads``, ``chain_checkpoints`` and the tables built
from records. Run on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from broker.audit import (
    AuditKind,
    AuditRecord,
    ChainWriter,
    KeystoreAuditSigner,
    KeystoreAuditVerifier,
)
from broker.governance import AuditStore, TopicMessage, open_store
from broker.governance._index import ChainTracker
from broker.keys import FileKeyStore
from broker.linkage import Linker
from broker.principals import Principal
from tests.unit.audit.conftest import T0, Run, index_records, quiet_chain, worker_chain

FIRST, SECOND = "worker:w1", "worker:w2"
_TABLES = ("audit_records", "chain_heads", "chain_checkpoints", "audit_subjects",
           "encompass_notices", "override_reviews")  # fmt: skip


def _q(store: AuditStore, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    return store._q(sql, params)  # type: ignore[attr-defined,no-any-return]  # raw SQL, as an attacker would


def _delete_chain(store: AuditStore, chain: str) -> None:
    for table in _TABLES:
        _q(store, f"DELETE FROM {table} WHERE chain = ?", (chain,))  # noqa: S608  # fixed names


class SigningSink:
    """The command line's audit chain signed by the console's key, Kafka faked: what it
    writes can be indexed as the indexer would."""

    def __init__(self, keys: FileKeyStore) -> None:
        self.writer = ChainWriter("console:test.cli", clock=lambda: T0)
        self.signer = KeystoreAuditSigner(keys, Principal.CONSOLE)
        self.records: list[AuditRecord] = []

    async def append(self, build: Callable[[ChainWriter], list[AuditRecord]]) -> list[AuditRecord]:
        records = build(self.writer)
        self.records += [*records, self.writer.checkpoint(self.signer)]
        return records

    async def close(self) -> None:
        pass


@pytest.fixture
def sink(keys: FileKeyStore, audit_db_url: str, monkeypatch: pytest.MonkeyPatch) -> SigningSink:
    """The index verified is the configured one (a copy's run vouches for nothing)."""
    import broker.cli._audit_verify

    monkeypatch.setenv("ACCORD_AUDIT_DB", audit_db_url)
    s = SigningSink(keys)
    monkeypatch.setattr(broker.cli._audit_verify, "appender_of", lambda *_a: s)
    return s


@pytest.fixture
def two_chains(
    store: AuditStore, verifier: KeystoreAuditVerifier, linker: Linker, keys: FileKeyStore
) -> list[AuditRecord]:
    """Two worker chains indexed, SECOND first in the topic (offsets 0..), then FIRST."""
    second = worker_chain(linker, keys, chain=SECOND)
    first = worker_chain(linker, keys, chain=FIRST)
    assert index_records(store, verifier, second + first).breaks == []
    return second + first


def _verified_and_indexed(
    store: AuditStore, verifier: KeystoreAuditVerifier, sink: SigningSink, audit_db_url: str,
    run_cli: Run, start: int,
) -> AuditRecord:  # fmt: skip
    """``accord audit verify`` run once, and its signed record indexed."""
    code, out, err = run_cli(["audit", "verify", "--db", audit_db_url])
    assert (code, err) == (0, ""), out
    assert index_records(store, verifier, sink.records, start=start).breaks == []
    return sink.records[0]


def test_a_passing_verifications_record_names_the_heads_it_verified(
    store: AuditStore, two_chains: list[AuditRecord], sink: SigningSink, audit_db_url: str,
    run_cli: Run,
) -> None:  # fmt: skip
    assert run_cli(["audit", "verify", "--db", audit_db_url])[0] == 0
    heads = sink.records[0].data["verified_heads"]
    ends = {r.chain: (r, offset) for offset, r in enumerate(two_chains)
            if r.kind is AuditKind.CHECKPOINT}  # fmt: skip
    assert heads == {
        c: {"seq": r.seq, "hash": r.hash, "partition": 0, "offset": offset}
        for c, (r, offset) in ends.items()
    }


def test_an_index_missing_a_whole_chain_a_signed_verification_saw_fails_naming_it(
    store: AuditStore, two_chains: list[AuditRecord], verifier: KeystoreAuditVerifier,
    sink: SigningSink, audit_db_url: str, run_cli: Run,
) -> None:  # fmt: skip
    record = _verified_and_indexed(store, verifier, sink, audit_db_url, run_cli, len(two_chains))
    _delete_chain(store, SECOND)
    code, out, err = run_cli(["audit", "verify", "--db", audit_db_url])
    head = max(r.seq for r in two_chains if r.chain == SECOND)
    assert (code, out) == (1, "")
    assert err.strip().endswith(
        f"audit chain '{SECOND}' broken at seq 0: chain missing from the index, but a signed "
        f"verification ({record.chain} seq {record.seq}) saw it reach seq {head}"
    ), err


def test_an_index_holding_a_chain_shorter_than_a_signed_verification_saw_fails(
    store: AuditStore, verifier: KeystoreAuditVerifier, keys: FileKeyStore, sink: SigningSink,
    audit_db_url: str, run_cli: Run,
) -> None:  # fmt: skip
    """Cut back to an older signed checkpoint, every reference in the index moved with it:
    consistent, signed, and shorter than a verification saw."""
    records, _, _ = quiet_chain(keys)
    assert index_records(store, verifier, records).breaks == []
    _verified_and_indexed(store, verifier, sink, audit_db_url, run_cli, len(records))
    _q(store, "DELETE FROM audit_records WHERE chain = 'worker:quiet' AND seq > 2")
    _q(store, "UPDATE chain_heads SET seq = 2, hash = ? WHERE chain = 'worker:quiet'",
       (records[2].hash,))  # fmt: skip
    _q(store, "UPDATE chain_checkpoints SET seq = 2, covers_seq = 1, body = ? "
       "WHERE chain = 'worker:quiet'", (records[2].to_bytes().decode(),))  # fmt: skip
    code, _, err = run_cli(["audit", "verify", "--db", audit_db_url])
    assert code == 1
    assert "'worker:quiet' broken at seq 3: chain ends at seq 2, but a signed verification" in err


def test_a_head_a_verification_saw_beyond_where_the_index_has_read_is_not_held_against_it(
    store: AuditStore, verifier: KeystoreAuditVerifier, linker: Linker, keys: FileKeyStore,
    sink: SigningSink, audit_db_url: str, run_cli: Run,
) -> None:  # fmt: skip
    """An index catching up (rebuilt, restored from a backup) reads partitions at different
    paces: a chain on a partition it has not read that far yet is not missing, only not
    indexed yet, and the answer says so. (The limit, too: an index whose read position was
    also set back, and holds nothing later in that partition, passes this way.)"""
    tracker = ChainTracker(store, verifier, topic="accord.audit")
    batch = tracker.new_batch()
    for partition, chain in ((1, SECOND), (0, FIRST)):
        for offset, rec in enumerate(worker_chain(linker, keys, chain=chain)):
            tracker.offer(batch, rec.chain.encode(), rec.to_bytes(), partition, offset)
    assert tracker.commit(batch)
    _verified_and_indexed(store, verifier, sink, audit_db_url, run_cli, 100)
    _delete_chain(store, SECOND)
    _q(store, "DELETE FROM kafka_offsets WHERE kafka_partition = 1")
    code, out, err = run_cli(["audit", "verify", "--db", audit_db_url])
    assert (code, err) == (0, "")
    assert out.strip().endswith(
        "; 1 chain an earlier verification saw further than this index has read the topic "
        "(not indexed yet)"
    ), out


def _offer(tracker: ChainTracker, records: list[AuditRecord], partition: int, start: int) -> int:
    """Index ``records`` at ``partition``'s offsets from ``start``; returns the next offset."""
    batch = tracker.new_batch()
    for i, rec in enumerate(records):
        tracker.offer(batch, rec.chain.encode(), rec.to_bytes(), partition, start + i)
    assert tracker.commit(batch)
    return start + len(records)


def test_a_chain_deleted_is_held_to_an_older_vouch_read_past_though_a_newer_lies_beyond(
    store: AuditStore, verifier: KeystoreAuditVerifier, linker: Linker, keys: FileKeyStore,
    sink: SigningSink, audit_db_url: str, run_cli: Run,
) -> None:  # fmt: skip
    """A newer vouch beyond where the index has read (its offset set back) does not excuse
    an older one it has plainly read past: the whole chain deleted fails."""
    tracker = ChainTracker(store, verifier, topic="accord.audit")
    x, _, _ = quiet_chain(keys)
    p0 = _offer(tracker, x[:3], 0, 0)  # seq 0..2 (checkpoint 2) at offsets 0..2
    p0 = _offer(tracker, worker_chain(linker, keys, chain=FIRST), 0, p0)
    assert run_cli(["audit", "verify", "--db", audit_db_url])[0] == 0  # vouches seq 2
    p1 = _offer(tracker, sink.records[:], 1, 0)
    first_run = len(sink.records)
    tail_at = p0
    _offer(tracker, x[3:], 0, p0)  # seq 3..5, the newest messages of partition 0
    assert run_cli(["audit", "verify", "--db", audit_db_url])[0] == 0  # vouches seq 5
    assert sink.records[first_run].data["verified_heads"]["worker:quiet"]["seq"] == 5
    _offer(tracker, sink.records[first_run:], 1, p1)
    _delete_chain(store, "worker:quiet")
    _q(store, "UPDATE kafka_offsets SET next_offset = ? WHERE kafka_partition = 0", (tail_at,))
    code, out, err = run_cli(["audit", "verify", "--db", audit_db_url])
    assert (code, out) == (1, "")
    assert (
        "audit chain 'worker:quiet' broken at seq 0: chain missing from the index, but a signed "
        f"verification ({sink.records[0].chain} seq {sink.records[0].seq}) saw it reach seq 2"
    ) in err


def test_a_copys_verification_vouches_for_nothing_and_the_live_index_still_passes(
    store: AuditStore, verifier: KeystoreAuditVerifier, linker: Linker, keys: FileKeyStore,
    sink: SigningSink, audit_db_url: str, run_cli: Run, monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:  # fmt: skip
    """A copy may hold a signed chain the live index never will (an evidence copy from
    before a restore, say): its run is recorded, as a copy's, naming no heads."""
    live_url = f"sqlite:///{tmp_path / 'live.db'}"
    live = open_store(live_url, home=tmp_path)
    assert index_records(live, verifier, worker_chain(linker, keys, chain=FIRST)).breaks == []
    monkeypatch.setenv("ACCORD_AUDIT_DB", live_url)
    copy = worker_chain(linker, keys, chain=SECOND) + worker_chain(linker, keys, chain=FIRST)
    assert index_records(store, verifier, copy).breaks == []
    code, _, err = run_cli(["audit", "verify", "--db", audit_db_url])
    assert (code, err) == (0, "")
    assert sink.records[0].data["detail"]["index_role"] == "copy"
    assert "verified_heads" not in sink.records[0].data
    _offer(ChainTracker(live, verifier, topic="accord.audit"), sink.records[:], 1, 0)
    live.close()
    code, out, err = run_cli(["audit", "verify"])
    assert (code, err) == (0, ""), out


def test_heads_in_a_copys_record_vouch_for_nothing(
    store: AuditStore, two_chains: list[AuditRecord], verifier: KeystoreAuditVerifier,
    sink: SigningSink, audit_db_url: str, run_cli: Run,
) -> None:  # fmt: skip
    """A copy's record naming heads (as one written before copies stopped vouching did) is
    not held against the index it is read from."""
    import asyncio

    from broker.governance import record_query, verify_store

    heads = verify_store(store, verifier).heads
    assert SECOND in heads
    detail = {"result": "intact", "index": "/evidence/audit.db", "index_role": "copy"}
    asyncio.run(record_query(sink, officer="ig", page="cli.verify", detail=detail,
                             verified_heads=heads))  # fmt: skip
    assert index_records(store, verifier, sink.records, start=len(two_chains)).breaks == []
    _delete_chain(store, SECOND)
    code, _, err = run_cli(["audit", "verify", "--db", audit_db_url])
    assert (code, err) == (0, ""), err


def test_a_verification_vouches_only_for_heads_no_earlier_one_vouches_for(
    store: AuditStore, two_chains: list[AuditRecord], verifier: KeystoreAuditVerifier,
    sink: SigningSink, audit_db_url: str, run_cli: Run,
) -> None:  # fmt: skip
    """Nothing new since: later records name only the command line's own chain (its last
    record was indexed in between), so records stay small however many chains there are;
    the deletion is still caught by the first's vouch. The first run's summary says how many
    chains no verification vouches for yet; each later one, when the newest vouching run
    was and what is newer than the vouches (the last run's own record and checkpoint)."""
    at = len(two_chains)
    for run in range(3):
        code, out, _ = run_cli(["audit", "verify", "--db", audit_db_url])
        assert code == 0
        said = "; 2 chains are not yet vouched for by a signed verification"
        assert (said in out) == (run == 0), out
        since = (
            f"; signed verifications vouch for {30 + 2 * run} of its records, the newest at "
            f"2026-11-22 08:00:00 UTC (console:test.cli seq {2 * (run - 1)}); 2 records in 1 chain "
            "(console:test.cli) are newer than what they vouch for, checked in the index only"
        )
        assert (since in out) == (run > 0), out
        # Never said here: the command line's own chain always holds the last run's records,
        # past the newest head a verification vouches for, which a cut would not show.
        assert "nothing is missing" not in out, out
        assert index_records(store, verifier, sink.records[2 * run :], start=at).breaks == []
        at += 2
    first = sink.records[0]
    assert sorted(first.data["verified_heads"]) == [FIRST, SECOND]
    for later in sink.records[2], sink.records[4]:
        assert list(later.data["verified_heads"]) == [first.chain]  # its own, one record on
    _delete_chain(store, SECOND)
    code, out, err = run_cli(["audit", "verify", "--db", audit_db_url])
    assert (code, out) == (1, "")
    assert f"audit chain '{SECOND}' broken at seq 0: chain missing from the index" in err


def test_the_newest_verification_cut_from_the_index_shows_as_an_older_run(
    store: AuditStore, two_chains: list[AuditRecord], verifier: KeystoreAuditVerifier,
    sink: SigningSink, audit_db_url: str, run_cli: Run,
) -> None:  # fmt: skip
    """The index alone cannot tell its newest records were cut (a backup restored looks the
    same), so no run's own record is vouched for; but the newest vouching run it names is
    signed: cut back, the index names an older run than the one its reader knows of."""
    at = len(two_chains)
    for run in range(2):  # each run's record indexed before the next run
        assert run_cli(["audit", "verify", "--db", audit_db_url])[0] == 0
        assert index_records(store, verifier, sink.records[2 * run :], start=at).breaks == []
        at += 2
    code, out, _ = run_cli(["audit", "verify", "--db", audit_db_url])
    assert "(console:test.cli seq 2); 2 records in 1 chain" in out, out
    kept = sink.records[1]  # the first run's checkpoint; the second run's records go
    _q(store, "DELETE FROM audit_records WHERE chain = ? AND seq > 1", (kept.chain,))
    _q(store, "UPDATE chain_heads SET seq = 1, hash = ? WHERE chain = ?", (kept.hash, kept.chain))
    _q(store, "UPDATE chain_checkpoints SET seq = 1, covers_seq = 0, body = ? WHERE chain = ?",
       (kept.to_bytes().decode(), kept.chain))  # fmt: skip
    code, out, err = run_cli(["audit", "verify", "--db", audit_db_url])
    assert (code, err) == (0, ""), err
    assert "(console:test.cli seq 0); 2 records in 1 chain (console:test.cli)" in out, out


def test_the_summary_counts_chains_grown_past_their_newest_vouch(
    store: AuditStore, verifier: KeystoreAuditVerifier, linker: Linker, keys: FileKeyStore,
    sink: SigningSink, audit_db_url: str, run_cli: Run,
) -> None:  # fmt: skip
    """Records past the newest head a verification vouches for could be cut back to it
    unseen by the index alone: counted, not only chains no verification names at all."""
    tracker = ChainTracker(store, verifier, topic="accord.audit")
    x, _, _ = quiet_chain(keys)
    p0 = _offer(tracker, x[:3], 0, 0)
    p0 = _offer(tracker, worker_chain(linker, keys, chain=FIRST), 0, p0)
    assert run_cli(["audit", "verify", "--db", audit_db_url])[0] == 0  # vouches X to seq 2
    _offer(tracker, sink.records[:], 1, 0)
    _offer(tracker, x[3:], 0, p0)  # X grows to seq 5
    code, out, _ = run_cli(["audit", "verify", "--db", audit_db_url])
    assert code == 0
    # The CLI's own chain (its 2 records), and X past its vouch (seq 3..5).
    assert (
        "; 5 records in 2 chains (console:test.cli, worker:quiet) are newer than what they "
        "vouch for, checked in the index only: removed from the end of their chains, or with "
        "a whole chain, they would not show yet"
    ) in out, out


def test_a_vouch_the_index_has_not_read_past_does_not_spare_naming_the_head_again(
    store: AuditStore, two_chains: list[AuditRecord], verifier: KeystoreAuditVerifier,
    sink: SigningSink, audit_db_url: str, run_cli: Run,
) -> None:  # fmt: skip
    """It is not held against the index yet, so a passing run vouches for the head itself."""
    import asyncio

    from broker.governance import record_query, verify_store

    heads = {
        c: h._replace(position=(0, 10**6)) for c, h in verify_store(store, verifier).heads.items()
    }
    detail = {"result": "intact", "index": "/var/lib/accord/audit.db", "index_role": "configured"}
    asyncio.run(record_query(sink, officer="ig", page="cli.verify", detail=detail,
                             verified_heads=heads))  # fmt: skip
    assert index_records(store, verifier, sink.records, start=len(two_chains)).breaks == []
    ran = len(sink.records)
    assert run_cli(["audit", "verify", "--db", audit_db_url])[0] == 0
    assert {FIRST, SECOND} <= set(sink.records[ran].data["verified_heads"])


# -- --from-topic --db: the topic says what the index has read ------------------------------


@pytest.fixture
def topic(monkeypatch: pytest.MonkeyPatch) -> list[TopicMessage]:
    """``accord.audit`` as ``verify --from-topic`` reads it, one partition, Kafka faked."""
    import broker.cli._audit_verify
    import broker.governance
    import broker.kafka

    messages: list[TopicMessage] = []

    async def read_topic(*_a: Any, **_kw: Any) -> list[TopicMessage]:
        return list(messages)

    async def partition_count(*_a: Any) -> int:
        return 1

    monkeypatch.setattr(broker.governance, "read_topic", read_topic)
    monkeypatch.setattr(broker.kafka, "partition_count", partition_count)
    monkeypatch.setattr(broker.cli._audit_verify, "kafka_as", lambda *_a: None)
    return messages


def _on_topic(records: list[AuditRecord]) -> list[TopicMessage]:
    return [TopicMessage(r.chain.encode(), r.to_bytes(), 0, i) for i, r in enumerate(records)]


@pytest.mark.parametrize("offsets_too", [False, True], ids=["offsets-kept", "offsets-deleted"])
def test_from_topic_a_chain_the_index_has_read_past_but_does_not_hold_fails(
    offsets_too: bool, store: AuditStore, two_chains: list[AuditRecord],
    topic: list[TopicMessage], audit_db_url: str, run_cli: Run,
) -> None:  # fmt: skip
    """Offsets set back too do not hide it: the index holds FIRST's rows at later offsets."""
    topic += _on_topic(two_chains)
    _delete_chain(store, SECOND)
    if offsets_too:
        _q(store, "DELETE FROM kafka_offsets")
    code, out, err = run_cli(["audit", "verify", "--from-topic", "--db", audit_db_url])
    assert (code, out) == (1, "")
    assert f"audit chain '{SECOND}' broken at seq 0: chain missing from the index" in err


def test_from_topic_an_index_chain_shorter_than_the_topics_fails(
    store: AuditStore, verifier: KeystoreAuditVerifier, keys: FileKeyStore,
    topic: list[TopicMessage], audit_db_url: str, run_cli: Run,
) -> None:  # fmt: skip
    records, _, _ = quiet_chain(keys)
    assert index_records(store, verifier, records).breaks == []
    topic += _on_topic(records)
    _q(store, "DELETE FROM audit_records WHERE chain = 'worker:quiet' AND seq > 2")
    _q(store, "UPDATE chain_checkpoints SET seq = 2, covers_seq = 1, body = ? "
       "WHERE chain = 'worker:quiet'", (records[2].to_bytes().decode(),))  # fmt: skip
    code, _, err = run_cli(["audit", "verify", "--from-topic", "--db", audit_db_url])
    assert code == 1
    assert (
        "'worker:quiet' broken at seq 3: the index holds the chain signed through seq 2, the "
        "topic through seq 5"
    ) in err


def test_from_topic_a_chain_cut_back_with_its_checkpoint_row_is_placed_where_it_ends(
    store: AuditStore, verifier: KeystoreAuditVerifier, keys: FileKeyStore,
    topic: list[TopicMessage], audit_db_url: str, run_cli: Run,
) -> None:  # fmt: skip
    """An IG officer cut a chain back and deleted its checkpoint row: the answer was "broken
    at seq 0: chain missing from the index" though seq 0-2 were all there."""
    records, _, _ = quiet_chain(keys)
    assert index_records(store, verifier, records).breaks == []
    topic += _on_topic(records)
    _q(store, "DELETE FROM audit_records WHERE chain = 'worker:quiet' AND seq > 2")
    _q(store, "DELETE FROM chain_checkpoints WHERE chain = 'worker:quiet'")
    # The head row left as it was (review r45b): where the records end is read from them.
    code, _, err = run_cli(["audit", "verify", "--from-topic", "--db", audit_db_url])
    assert code == 1
    assert (
        "'worker:quiet' broken at seq 3: the index holds the chain through seq 2 but no signed "
        "checkpoint of it, though the topic holds it signed through seq 5"
    ) in err


def test_from_topic_an_index_that_has_not_read_as_far_yet_is_no_fault(
    store: AuditStore, verifier: KeystoreAuditVerifier, linker: Linker, keys: FileKeyStore,
    topic: list[TopicMessage], audit_db_url: str, run_cli: Run,
) -> None:  # fmt: skip
    """The index trails the topic: a chain written after where it has read is not missing."""
    first = worker_chain(linker, keys, chain=FIRST)
    assert index_records(store, verifier, first).breaks == []
    topic += _on_topic(first + worker_chain(linker, keys, chain=SECOND))
    code, out, err = run_cli(["audit", "verify", "--from-topic", "--db", audit_db_url])
    assert (code, err) == (0, "")
    assert out.strip().endswith(
        "; the index holds everything the topic signed up to where it has read it "
        "(1 chain signed further than that: not indexed yet)"
    ), out
