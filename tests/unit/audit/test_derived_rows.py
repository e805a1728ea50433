"""What ``verify --db`` says of a derived row that was edited, added or deleted by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from broker.audit import AuditKind, AuditRecord, ChainWriter
from broker.errors import ChainBroken
from broker.governance._derived import Derived
from broker.governance._store import DerivedRows, notice_row, review_row

AT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _records() -> tuple[AuditRecord, AuditRecord]:
    w = ChainWriter("worker:w1", clock=lambda: AT)
    notice = w.append(
        AuditKind.DECIDED, event_id="e1", party="school-146201",
        data={"outcome": "shared", "event_type": "police.domestic_incident",
              "recipient_kind": "school"},
    )  # fmt: skip
    review = w.append(
        AuditKind.OVERRIDE_REVIEWED, event_id="e2", party="cog-tipton",
        data={"reviewed_by": "ig-jo", "finding": "justified", "reference": "IG-1"},
    )  # fmt: skip
    return notice, review


def _check(notices: list[tuple[str, str, str, str, int]], reviews: list[Any]) -> None:
    derived = Derived()
    for rec in _records():
        derived.take(rec)
    derived.check(DerivedRows(subjects=[], reviews=reviews, notices=notices))


def test_an_altered_encompass_notice_time_is_named_as_an_encompass_row_that_was_changed() -> None:
    notice, review = _records()
    event, party, _ = notice_row(notice)
    with pytest.raises(ChainBroken) as err:
        _check(
            [(event, party, "2026-11-24T09:00:00.000000Z", notice.chain, notice.seq)],
            [(review_row(review), review.chain, review.seq)],
        )
    assert "an Operation Encompass notice row differs from what its record holds" in str(err.value)
    assert "no record holds" not in str(err.value)


def test_a_changed_review_finding_is_named_as_a_review_row_that_was_changed() -> None:
    notice, review = _records()
    row = list(review_row(review))
    row[3] = "not_justified"
    with pytest.raises(ChainBroken) as err:
        _check([(*notice_row(notice), notice.chain, notice.seq)],
               [(tuple(row), review.chain, review.seq)])  # fmt: skip
    assert "a review row differs from what its record holds (changed)" in str(err.value)


def test_a_notice_row_no_record_made_reads_an_operation_encompass_row_added() -> None:
    notice, review = _records()
    with pytest.raises(ChainBroken) as err:
        _check(
            [(*notice_row(notice), notice.chain, notice.seq),
             ("e9", "school-146202", "2026-11-24T09:00:00.000000Z", "worker:w1", 99)],
            [(review_row(review), review.chain, review.seq)],
        )  # fmt: skip
    assert "an Operation Encompass notice row no record holds (added)" in str(err.value)


def test_rows_as_the_records_imply_them_pass() -> None:
    notice, review = _records()
    _check([(*notice_row(notice), notice.chain, notice.seq)],
           [(review_row(review), review.chain, review.seq)])  # fmt: skip
