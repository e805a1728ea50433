"""A safeguarding concern without a justification is refused on every way in, CSV included."""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from broker.events import parse_event
from broker.sdk._files import RowProblem, read_export
from broker.synthetic import SyntheticFamilies

_OCCURRED = datetime(2026, 11, 21, 22, 40, tzinfo=UTC)


@pytest.mark.parametrize("justification", ["", "   "])
def test_a_csv_row_with_a_concern_and_no_justification_is_a_rejected_row(
    tmp_path: Path, justification: str
) -> None:
    family = SyntheticFamilies(seed=3, today=date(2026, 11, 22))
    event = json.loads(
        json.dumps(
            family.event("police.domestic_incident", "wmp", occurred_at=_OCCURRED), default=str
        )
    )
    row = {
        "event_id": event["event_id"], "type": event["type"], "sender": event["sender"],
        "occurred_at": event["occurred_at"], "need_level": str(event["need_level"]),
        "safeguarding_concern": "true", "safeguarding_justification": justification,
        **{k: str(v) for k, v in event["subjects"][0].items()},
    }  # fmt: skip
    path = tmp_path / "x.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, list(row))
        writer.writeheader()
        writer.writerow(row)
    now = _OCCURRED + timedelta(hours=1)
    [got] = list(read_export(path, lambda d: parse_event(d, now=now)))
    assert isinstance(got, RowProblem)
    assert got.problems == [("safeguarding.justification", "required when concern is true")]
