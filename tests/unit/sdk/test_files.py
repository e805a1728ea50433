"""Reading an agency's export for ``accord publish``: bad bytes are one clear error, not a crash."""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from broker.errors import UsageError
from broker.events import ContactEvent, parse_event
from broker.sdk._files import CSV_SUBJECT_COLUMNS, GoodRow, RowProblem, read_export
from broker.synthetic import SyntheticFamilies


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


def test_a_row_nested_too_deep_to_parse_is_a_problem_on_its_row_not_a_crash(
    tmp_path: Path,
) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text("[" * 200_000 + "]" * 200_000 + "\n{}\n")
    rows = list(read_export(path, validate))
    assert [(type(r), r.line) for r in rows] == [(RowProblem, 1), (RowProblem, 2)]
    first = rows[0]
    assert isinstance(first, RowProblem)
    assert first.problems == [("(json)", "not valid JSON: nested too deep")]


# -- CSV exports ---------------------------------------------------------------------------

_FAMILY = SyntheticFamilies(seed=3, today=date(2026, 11, 22))
_OCCURRED = datetime(2026, 11, 21, 22, 40, tzinfo=UTC)


def _event() -> dict[str, Any]:
    subjects = [_FAMILY.subject("child"), _FAMILY.subject("parent")]
    event = _FAMILY.event(
        "police.domestic_incident", "wmp", subjects=subjects, occurred_at=_OCCURRED
    )
    return json.loads(json.dumps(event, default=str))


def _csv_rows(event: dict[str, Any], **event_columns: str) -> list[dict[str, str]]:
    """One row per subject, the event's columns on every row (as most exports write them)."""
    columns = {
        "event_id": event["event_id"], "type": event["type"], "sender": event["sender"],
        "occurred_at": event["occurred_at"], "need_level": str(event["need_level"]),
        "summary": event["summary"], "categories": ";".join(event["categories"]),
        **event_columns,
    }  # fmt: skip
    return [{**columns, **{k: str(v) for k, v in s.items()}} for s in event["subjects"]]


def _write_csv(path: Path, rows: list[dict[str, str]], *, bom: bool = False) -> Path:
    header = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, header)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _read(path: Path) -> list[GoodRow | RowProblem]:
    return list(read_export(path, lambda d: parse_event(d, now=_OCCURRED + timedelta(hours=1))))


@pytest.mark.parametrize(
    ("written", "concern"),
    [("", False), ("N", False), ("no", False), ("off", False), ("F", False), ("0", False),
     ("Y", True), ("yes", True), ("TRUE", True), ("1", True)],
)  # fmt: skip
def test_a_csv_safeguarding_concern_is_read_as_its_spelling_of_yes_or_no(
    tmp_path: Path, written: str, concern: bool
) -> None:
    why = "risk of significant harm" if concern else ""
    rows = _csv_rows(_event(), safeguarding_concern=written, safeguarding_justification=why)
    [row] = _read(_write_csv(tmp_path / "x.csv", rows))
    assert isinstance(row, GoodRow)
    assert row.event.safeguarding.concern is concern


@pytest.mark.parametrize("written", ["maybe", "unknown", "nope"])
def test_a_csv_yes_or_no_column_in_no_known_spelling_is_a_rejected_row_never_a_yes(
    tmp_path: Path, written: str
) -> None:
    rows = _csv_rows(_event(), safeguarding_concern=written, safeguarding_justification="x")
    [row] = _read(_write_csv(tmp_path / "x.csv", rows))
    assert isinstance(row, RowProblem)
    assert [field for field, _ in row.problems] == ["safeguarding.concern"]


@pytest.mark.parametrize("column", ["child_present", "safeguarding_concern"])
def test_a_csv_yes_or_no_column_refused_says_the_spellings_it_takes(
    tmp_path: Path, column: str
) -> None:
    """Walkthrough: "child_present: must be true or false" though yes/no/y/n/1/0 are taken."""
    rows = _csv_rows(_event(), **{column: "maybe"}, safeguarding_justification="x")
    [row] = _read(_write_csv(tmp_path / "x.csv", rows))
    assert isinstance(row, RowProblem)
    assert row.problems == [
        (
            column.replace("_concern", ".concern"),
            "must be yes or no: true/false, t/f, yes/no, y/n, on/off or 1/0 (any case)",
        )
    ]


def test_a_json_export_still_says_true_or_false_as_json_spells_them(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps({**_event(), "child_present": "yes"}, default=str) + "\n")
    [row] = _read(path)
    assert isinstance(row, RowProblem)
    assert ("child_present", "must be true or false") in row.problems


def test_a_csv_column_no_event_has_is_refused_rather_than_dropped(tmp_path: Path) -> None:
    rows = [{**r, "NHS_Number": r.pop("nhs_number")} for r in _csv_rows(_event())]
    path = _write_csv(tmp_path / "x.csv", rows)
    with pytest.raises(
        UsageError, match=r"unknown column\(s\) NHS_Number \(did you mean 'nhs_number'\?\)"
    ):
        _read(path)


@pytest.mark.parametrize("column", ["Ruby Holland", "ruby_holland", "9434765919"])
def test_an_unknown_csv_column_is_said_by_its_place_not_its_name(
    column: str, tmp_path: Path
) -> None:
    """A walkthrough: the header's text was echoed, where JSON says an unknown key unnamed,
    since a mapping mistake can put personal data where a key goes."""
    rows = [{**r, column: ""} for r in _csv_rows(_event())]
    path = _write_csv(tmp_path / "x.csv", rows)
    with pytest.raises(UsageError) as err:
        _read(path)
    place = list(rows[0]).index(column) + 1
    assert f"unknown column(s) (unknown column {place})" in str(err.value)
    assert column not in str(err.value)


def test_a_spreadsheets_csv_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    [row] = _read(_write_csv(tmp_path / "x.csv", _csv_rows(_event()), bom=True))
    assert isinstance(row, GoodRow)
    assert len(row.event.subjects) == 2


def test_later_rows_of_an_event_may_leave_its_columns_blank(tmp_path: Path) -> None:
    event = _event()
    first, second = _csv_rows(event)
    second = {k: ("" if k not in CSV_SUBJECT_COLUMNS and k != "event_id" else v)
              for k, v in second.items()}  # fmt: skip
    [row] = _read(_write_csv(tmp_path / "x.csv", [first, second]))
    assert isinstance(row, GoodRow)
    assert [s.role for s in row.event.subjects] == ["child", "parent"]


def test_a_row_that_says_something_else_about_its_event_rejects_the_event(
    tmp_path: Path,
) -> None:
    """Another type under the same event id is another event given that id by mistake: its
    subject must not be shared under the first event."""
    first, second = _csv_rows(_event())
    second["type"] = "health.ed_attendance"
    [row] = _read(_write_csv(tmp_path / "x.csv", [first, second]))
    assert isinstance(row, RowProblem)
    assert (row.line, row.problems) == (3, [("type", "differs from line 2, the first row "
                                                     "of the same event_id")])  # fmt: skip


def test_an_event_id_repeated_in_an_export_rejects_the_later_row(tmp_path: Path) -> None:
    event = _event()
    again = {**event, "summary": "corrected"}
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(event) + "\n" + json.dumps(again) + "\n")
    first, second = _read(path)
    assert isinstance(first, GoodRow)
    assert isinstance(second, RowProblem)
    assert second.problems == [("event_id", "repeats line 1's")]


def test_a_csv_row_split_by_an_unquoted_comma_is_rejected_not_shifted_into_other_fields(
    tmp_path: Path,
) -> None:
    """An unquoted "hit mother, child disclosed" would put the disclosure in ``location``."""
    rows = _csv_rows(_event(), summary="Father hit mother", location="Tipton")
    path = _write_csv(tmp_path / "x.csv", rows)
    text = path.read_text().replace("Father hit mother", "Father hit mother, child disclosed", 1)
    path.write_text(text)
    [row] = _read(path)
    assert isinstance(row, RowProblem)
    assert row.line == 2
    assert row.problems == [("(row)", "1 more value(s) than the header has columns: put double "
                                      "quotes round a value that holds a comma")]  # fmt: skip
    assert "disclosed" not in row.describe()


def test_a_csv_row_spanning_lines_is_numbered_by_the_line_it_starts_on(tmp_path: Path) -> None:
    """A quoted summary with line breaks: good or rejected, each event is the line where its
    row begins (what --from-line and the reports speak of), not where the row ends."""
    events = [_event() for _ in range(3)]
    rows = [
        *_csv_rows(events[0], summary="Seen at home.\nChild quiet.\nFollow up."),  # 2-4, 5-7
        *_csv_rows(events[1], summary="Seen at school.\nTeacher worried."),  # 8-9, 10-11
        *_csv_rows(events[2]),  # 13, 14 (a blank line before)
    ]
    rows[2]["nhs_number"] = "9990000001"  # the second event's child: check digit wrong
    path = _write_csv(tmp_path / "x.csv", rows)
    records = path.read_bytes().split(b"\r\n")  # the header, then one per row
    path.write_bytes(b"\r\n".join([*records[:5], b"", *records[5:]]))
    read = _read(path)
    assert [(type(r).__name__, r.line) for r in read] == [
        ("GoodRow", 2), ("RowProblem", 8), ("GoodRow", 13)
    ]  # fmt: skip
    assert read[1].describe().startswith("line 8: subjects[0].nhs_number:")


def test_a_later_row_after_a_multi_line_first_row_names_where_each_starts(
    tmp_path: Path,
) -> None:
    first, second = _csv_rows(_event(), summary="Seen at home.\nChild quiet.")  # 2-3, 4-5
    second["type"] = "health.ed_attendance"
    [row] = _read(_write_csv(tmp_path / "x.csv", [first, second]))
    assert isinstance(row, RowProblem)
    assert (row.line, row.problems) == (4, [("type", "differs from line 2, the first row "
                                                     "of the same event_id")])  # fmt: skip


def test_a_jsonl_row_giving_a_key_twice_is_rejected_as_the_gateway_refuses_it(
    tmp_path: Path,
) -> None:
    """A walkthrough: the row's last need_level was kept where the gateway refuses."""
    event = json.dumps(_event())
    twice = event[:-1] + ', "need_level": 3, "need_level": 1}'
    path = tmp_path / "x.jsonl"
    path.write_text(f"{twice}\n{event}\n")
    first, second = read_export(path, validate)
    assert first == RowProblem(1, [("(json)", "a key appears twice in one JSON object")])
    assert isinstance(second, GoodRow)
