"""``accord audit index``'s line on what it refused says what each reason means, and does not
call a record at an indexed sequence number one its writer never signed."""

from __future__ import annotations

from collections import Counter

from broker.governance import IndexSummary
from broker.governance._signed import UNDONE_BY_A_LATER_CHECKPOINT
from broker.governance._tracker import REFUSED_MEANS


def test_conflicts_with_indexed_is_said_as_what_it_is_not_as_unsigned() -> None:
    summary = IndexSummary(refused=Counter({"conflicts-with-indexed": 51}))
    line = summary.refusals()
    assert line.startswith("refused 51 messages, kept out of the index (conflicts-with-indexed: 51")
    assert "a different record at a sequence number already indexed" in line
    assert "restored from a backup older than the index" in line
    assert "no writer signed" not in line
    assert "\n" not in line


def test_each_reason_is_counted_and_explained_in_one_line() -> None:
    summary = IndexSummary(refused=Counter({"undecodable": 2, "not-signed-by-writer": 1}))
    assert summary.refusals() == (
        "refused 3 messages, kept out of the index (not-signed-by-writer: 1 (no checkpoint of "
        "its writer's covered it: a fork, or never signed); undecodable: 2 (not an audit record))"
    )


def test_one_message_refused_is_said_in_the_singular() -> None:
    line = IndexSummary(refused=Counter({"undecodable": 1})).refusals()
    assert line.startswith("refused 1 message, kept out of the index (undecodable: 1")


def test_every_reason_the_indexer_refuses_for_has_its_meaning() -> None:
    produced = {
        "undecodable", "foreign-chain", "kind-not-allowed", "wrong-key", "wrong-partition",
        "bad-hash", "conflicts-with-indexed", *UNDONE_BY_A_LATER_CHECKPOINT,
    }  # fmt: skip
    assert produced == set(REFUSED_MEANS)


def test_the_run_line_says_what_was_new_and_what_the_index_holds() -> None:
    """Walkthrough: a run with nothing new read "indexed 0 records (0 already indexed)" while
    the index held 580: the indexer resumes after what it committed, so none are read again."""
    from broker.cli._audit import _indexed

    assert _indexed(IndexSummary(), 580, 4) == (
        "indexed 0 new records; the index holds 580 records in 4 chains"
    )
    assert _indexed(IndexSummary(indexed=1, duplicates=3), 581, 1) == (
        "indexed 1 new record (3 read again, already indexed); the index holds 581 records in "
        "1 chain"
    )
