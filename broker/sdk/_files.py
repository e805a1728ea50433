"""Reading agencies' bulk exports (JSONL or CSV) into contact events, row by row.

Each row is validated on its own; a bad row is reported with its line number and the fields
at fault (never their values) and the good rows still go.
"""

from __future__ import annotations

import contextlib
import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from broker.errors import EventInvalid, UsageError
from broker.events import (
    ContactEvent,
    near_field,
    no_duplicate_keys,
)

#: CSV columns: one row per subject; rows sharing an event_id make one event.
CSV_EVENT_COLUMNS = (
    "event_id", "type", "sender", "occurred_at", "reference", "need_level", "child_present",
    "summary", "child_voice", "categories", "service", "location",
    "safeguarding_concern", "safeguarding_justification",
)  # fmt: skip
CSV_SUBJECT_COLUMNS = (
    "role", "nhs_number", "given_name", "family_name", "dob", "address", "postcode", "school_urn",
)  # fmt: skip
_CSV_COLUMNS = frozenset(CSV_EVENT_COLUMNS + CSV_SUBJECT_COLUMNS)
_CsvRow = dict[str, str | None]


@dataclass(frozen=True)
class RowProblem:
    line: int  # where the row starts: a CSV row's quoted field may run over several lines
    problems: list[tuple[str, str]]

    def describe(self) -> str:
        return f"line {self.line}: " + "; ".join(f"{f}: {m}" for f, m in self.problems)


@dataclass(frozen=True)
class GoodRow:
    line: int  # where the event starts (a CSV event: its first row's first line)
    event: ContactEvent


def read_export(
    path: Path, validate: Callable[[dict[str, Any]], ContactEvent]
) -> Iterator[GoodRow | RowProblem]:
    """Yield each row of a ``.jsonl``/``.json`` or ``.csv`` export, validated."""
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".ndjson", ".json"}:
        rows = _jsonl_rows(path)
    elif suffix == ".csv":
        rows = _csv_rows(path)
    else:
        raise UsageError(f"{path}: unknown export format {suffix!r} (use .jsonl or .csv)")
    first_line: dict[str, int] = {}
    for line, data in rows:
        if isinstance(data, RowProblem):
            yield data
            continue
        try:
            event = validate(data)
        except EventInvalid as exc:
            csv = suffix == ".csv"
            yield RowProblem(line, [_csv_words(p) for p in exc.problems] if csv else exc.problems)
            continue
        # The broker takes an event id once: a second event under it (a corrected re-export
        # in the same file, say) would be quarantined as a replay after being "published".
        eid = str(event.event_id)
        if eid in first_line:
            yield RowProblem(line, [("event_id", f"repeats line {first_line[eid]}'s")])
            continue
        first_line[eid] = line
        yield GoodRow(line, event)


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | RowProblem]]:
    with _text(path) as fh:
        for n, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                data = json.loads(raw, object_pairs_hook=no_duplicate_keys)
            except EventInvalid as exc:  # a key given twice: as the gateway refuses it
                yield n, RowProblem(n, exc.problems)
                continue
            except json.JSONDecodeError as exc:
                yield n, RowProblem(n, [("(json)", f"not valid JSON at column {exc.colno}")])
                continue
            except ValueError:  # an integer too long for Python to parse
                yield n, RowProblem(n, [("(json)", "not valid JSON: a number is too long")])
                continue
            except RecursionError:  # lists or objects nested past what Python parses
                yield n, RowProblem(n, [("(json)", "not valid JSON: nested too deep")])
                continue
            if not isinstance(data, dict):
                yield n, RowProblem(n, [("(row)", "must be a JSON object")])
                continue
            yield n, data


def _unknown_column(number: int, name: str) -> str:
    """A column that is not ours, as an unknown JSON key is said: named only as a near miss
    of one of ours (``NHS_Number``, any case), else by its place: a mapping mistake can put a
    name or a number where a header goes."""
    near = near_field(name.lower(), _CSV_COLUMNS)
    return f"{name} (did you mean {near!r}?)" if near else f"(unknown column {number})"


def _blank_to_none(value: str | None) -> str | None:
    return None if value is None or value.strip() == "" else value.strip()


# The spellings of yes and no that record systems export. Anything else is passed on as
# text, for validation to refuse: a word read as "yes" could turn on a safeguarding override.
_YES, _NO = ("true", "t", "yes", "y", "on", "1"), ("false", "f", "no", "n", "off", "0")
_FLAGS = {**dict.fromkeys(_YES, True), **dict.fromkeys(_NO, False)}
# Validation says "must be true or false", right for JSON; a CSV column takes these spellings.
_PAIRS = [f"{y}/{n}" for y, n in zip(_YES, _NO, strict=True)]
_FLAG_WORDS = f"must be yes or no: {', '.join(_PAIRS[:-1])} or {_PAIRS[-1]} (any case)"
_FLAG_FIELDS = frozenset({"child_present", "safeguarding.concern"})


def _csv_words(problem: tuple[str, str]) -> tuple[str, str]:
    """``problem`` as a CSV export's author reads it: a yes/no column's accepted spellings."""
    field, message = problem
    return (field, _FLAG_WORDS) if field in _FLAG_FIELDS and "true or false" in message else problem


def _flag(value: str | None) -> bool | str | None:
    v = _blank_to_none(value)
    if v is None:
        return None
    return _FLAGS.get(v.lower(), v)


@contextlib.contextmanager
def _text(path: Path) -> Iterator[TextIO]:
    """``path`` as UTF-8 text; bytes that are not UTF-8, or a broken CSV, are one clear error."""
    # utf-8-sig: spreadsheets save "CSV UTF-8" with a byte-order mark, which would otherwise
    # become part of the first column's name.
    with path.open(encoding="utf-8-sig", newline="") as fh:
        try:
            yield fh
        except UnicodeDecodeError:
            raise UsageError(f"{path}: not UTF-8 text") from None
        except csv.Error as exc:  # e.g. an unclosed quote running past the field size limit
            raise UsageError(f"{path}: not valid CSV: {exc}") from None


def _csv_records(fh: TextIO) -> tuple[list[str], Iterator[tuple[int, _CsvRow, list[str]]]]:
    """The header, and each row as ``csv.DictReader`` would give it (a column the row is short
    of is None; cells beyond the header apart) with the line the row STARTS on.

    A quoted field may hold line breaks, so a row can span lines, and the reader's
    ``line_num`` after a row is where it ends. Reports and ``--from-line`` speak of where an
    event starts (where a user scrolls to), so the count is taken before each row is read.
    """
    reader = csv.reader(fh)
    header = next(reader, [])

    def rows() -> Iterator[tuple[int, _CsvRow, list[str]]]:
        while True:
            before = reader.line_num
            cells = next(reader, None)
            if cells is None:
                return
            if not cells:  # a blank line, skipped as DictReader does
                continue
            row = {c: cells[i] if i < len(cells) else None for i, c in enumerate(header)}
            yield before + 1, row, cells[len(header) :]

    return header, rows()


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | RowProblem]]:
    with _text(path) as fh:
        header, records = _csv_records(fh)
        missing = {"event_id", "type", "sender", "role"} - set(header)
        if missing:
            raise UsageError(f"{path}: CSV header lacks column(s) {', '.join(sorted(missing))}")
        # A misspelt column (NHS_Number) would drop its values from every row without a word,
        # and the events would go without them: refused, as an unknown JSON field is.
        unknown = [_unknown_column(i, c) for i, c in enumerate(header, 1) if c not in _CSV_COLUMNS]
        if unknown or len(set(header)) != len(header):
            what = f"unknown column(s) {', '.join(unknown)}" if unknown else "a repeated column"
            raise UsageError(f"{path}: CSV header has {what} (see docs/sdk.md for the columns)")
        events: dict[str, tuple[int, dict[str, Any]]] = {}
        given: dict[str, dict[str, str]] = {}  # each event's columns as its first row gives them
        bad: dict[str, RowProblem] = {}
        for line, row, extra in records:
            eid = _blank_to_none(row.get("event_id")) or f"(line {line})"
            said = {c: v for c in CSV_EVENT_COLUMNS if (v := _blank_to_none(row.get(c)))}
            if eid not in events:
                events[eid] = (line, _csv_event(row))
                given[eid] = said
            elif (differs := _differs(given[eid], said)) is not None and eid not in bad:
                why = f"differs from line {events[eid][0]}, the first row of the same event_id"
                bad[eid] = RowProblem(line, [(differs, why)])
            if extra and eid not in bad:
                # An unquoted comma in a value (a summary: "hit mother, child disclosed...")
                # splits it, and every later column takes its neighbour's value: the free
                # text lands in a field shared more widely, and the last value is lost.
                why = (
                    f"{len(extra)} more value(s) than the header has columns: put double "
                    "quotes round a value that holds a comma"
                )
                bad[eid] = RowProblem(line, [("(row)", why)])
            subject = {c: _blank_to_none(row.get(c)) for c in CSV_SUBJECT_COLUMNS if c in row}
            events[eid][1]["subjects"].append({k: v for k, v in subject.items() if v is not None})
    for eid, (line, data) in events.items():
        yield line, bad.get(eid, data)


def _differs(first: dict[str, str], later: dict[str, str]) -> str | None:
    """The first event column a later row of the same event gives otherwise, if any.

    Rows sharing an event_id add subjects to one event, and may leave the event's columns
    blank or repeat them. A row that says something else about the event (another type,
    another summary) is a different event given the same id by mistake: its subjects must
    not be shared under the first one's.
    """
    return next((c for c, v in later.items() if first.get(c) != v), None)


def _csv_event(row: _CsvRow) -> dict[str, Any]:
    event: dict[str, Any] = {c: _blank_to_none(row.get(c)) for c in CSV_EVENT_COLUMNS if c in row}
    if isinstance(event.get("need_level"), str) and event["need_level"].isdigit():
        event["need_level"] = int(event["need_level"])
    event["child_present"] = _flag(row.get("child_present"))
    cats = event.get("categories")
    event["categories"] = [c.strip() for c in cats.split(";") if c.strip()] if cats else []
    concern = _flag(event.pop("safeguarding_concern", None))
    event["safeguarding"] = {
        "concern": False if concern is None else concern,
        "justification": event.pop("safeguarding_justification", None),
    }
    event["subjects"] = []
    return event
