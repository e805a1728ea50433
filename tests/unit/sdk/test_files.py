"""Reading an agency's export for ``accord publish``: bad bytes are one clear error, not a crash."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from broker.errors import UsageError
from broker.events import ContactEvent, parse_event
from broker.sdk._files import GoodRow, RowProblem, read_export


def validate(data: dict[str, Any]) -> ContactEvent:
    return parse_event(data, now=datetime.now(UTC))


@pytest.mark.parametrize(
    ("name", "body", "says"),
    [
        ("x.jsonl", b'{"event_id": "\xff\xfe"}\n', "not UTF-8 text"),
        ("x.csv", b"event_id,type,sender,role\n\xff,a,b,c\n", "not UTF-8 text"),
        ("x.csv", b'event_id,type,sender,role\n"' + b"a" * 200_000 + b"\n", "not valid CSV"),
    ],
)
def test_an_unreadable_export_is_one_usage_error_naming_the_file(
    name: str, body: bytes, says: str, tmp_path: Path
) -> None:
    path = tmp_path / name
    path.write_bytes(body)
    with pytest.raises(UsageError) as err:
        list(read_export(path, validate))
    assert str(err.value).startswith(f"{path}: {says}")
    assert "aaaa" not in str(err.value)


def test_a_number_too_long_to_parse_is_a_problem_on_its_row(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"need_level": ' + b"9" * 5000 + b"}\n{}\n")
    rows = list(read_export(path, validate))
    assert [type(r) for r in rows] == [RowProblem, RowProblem]
    first = rows[0]
    assert isinstance(first, RowProblem)
    assert first.line == 1
    assert "too long" in str(first.problems)
    assert not any(isinstance(r, GoodRow) for r in rows)
