"""A SAR's header says what the index records of the last verification, counts agreeing with
their nouns; a passing row without counts (only a hand-written one has none) says so rather
than counting nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from broker.governance import AuditStore, verification_state
from broker.governance._store import VerifyRun

AT = datetime(2026, 11, 22, 14, 0, tzinfo=UTC)


class _Store:
    def __init__(self, run: VerifyRun) -> None:
        self._run = run

    def broken_chains(self) -> list[str]:
        return []

    def last_verification(self) -> VerifyRun:
        return self._run


def _state(**run: Any) -> str:
    store = _Store(VerifyRun(at=AT, by="ig.jo", via="cli", ok=True, **run))
    return verification_state(cast("AuditStore", store))


def test_one_record_in_one_chain_is_said_in_the_singular() -> None:
    assert _state(records=1, chains=1).endswith("intact, 1 record in 1 chain as indexed then")


def test_counts_are_plural_otherwise() -> None:
    assert _state(records=0, chains=2).endswith("intact, 0 records in 2 chains as indexed then")


def test_a_pass_without_counts_says_they_were_not_recorded_rather_than_none_or_zero() -> None:
    said = _state()
    assert said.endswith("intact, its counts not recorded")
    assert "None" not in said
    assert "0 records" not in said
