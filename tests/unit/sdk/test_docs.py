"""docs/sdk.md quotes what the code says: its example messages are produced verbatim."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from pathlib import Path

from broker.events import parse_event
from broker.sdk import RowProblem, read_export
from broker.synthetic import SyntheticFamilies

DOC = Path(__file__).resolve().parents[3] / "docs" / "sdk.md"
AT = datetime(2026, 11, 22, tzinfo=UTC)


def test_the_quoted_rejection_of_a_bad_nhs_number_is_what_a_bulk_export_reports(
    tmp_path: Path,
) -> None:
    quoted = re.findall(r"^# rejected \S+ (line \d+: .+)$", DOC.read_text(), re.MULTILINE)
    assert len(quoted) == 1
    fam = SyntheticFamilies(seed=3, today=date(2026, 11, 22))
    occurred = datetime(2026, 11, 21, 22, 40, tzinfo=UTC)
    child = fam.subject("child")
    good = fam.event("police.domestic_incident", "wmp", subjects=[child], occurred_at=occurred)
    bad = json.loads(json.dumps(good, default=str))
    bad["event_id"] = "a1d1b7d4-50f6-4d7e-9d5a-2f6a0b0c0d01"
    bad["subjects"][0]["nhs_number"] = "9990000001"  # a 999 number whose check digit is wrong
    export = tmp_path / "export.jsonl"
    export.write_text(json.dumps(good, default=str) + "\n" + json.dumps(bad) + "\n")
    rows = list(read_export(export, lambda d: parse_event(d, now=AT)))
    problems = [r.describe() for r in rows if isinstance(r, RowProblem)]
    assert problems == quoted
