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
from broker.events import ContactEvent

#: CSV columns: one row per subject; rows sharing an event_id make one event.
CSV_EVENT_COLUMNS = (
    "event_id", "type", "sender", "occurred_at", "reference", "need_level", "child_present",
    "summary", "child_voice", "categories", "service", "location",
    "safeguarding_concern", "safeguarding_justification",
)  # fmt: skip
CSV_SUBJECT_COLUMNS = (
    "role", "nhs_number", "given_name", "family_name", "dob", "address", "postcode", "school_urn",
)  # fmt: skip


@dataclass(frozen=True)
class RowProblem:
    line: int
    problems: list[tuple[str, str]]

    def describe(self) -> str:
        return f"line {self.line}: " + "; ".join(f"{f}: {m}" for f, m in self.problems)


@dataclass(frozen=True)
class GoodRow:
    line: int
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
    for line, data in rows:
        if isinstance(data, RowProblem):
            yield data
            continue
        try:
            yield GoodRow(line, validate(data))
        except EventInvalid as exc:
            yield RowProblem(line, exc.problems)


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | RowProblem]]:
    with _text(path) as fh:
        for n, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                data = json.loads(raw)
            except json.JSONDecodeError as exc:
                yield n, RowProblem(n, [("(json)", f"not valid JSON at column {exc.colno}")])
                continue
            except ValueError:  # an integer too long for Python to parse
                yield n, RowProblem(n, [("(json)", "not valid JSON: a number is too long")])
                continue
            if not isinstance(data, dict):
                yield n, RowProblem(n, [("(row)", "must be a JSON object")])
                continue
            yield n, data


def _blank_to_none(value: str | None) -> str | None:
    return None if value is None or value.strip() == "" else value.strip()


def _flag(value: str | None) -> bool | str | None:
    v = _blank_to_none(value)
    if v is None:
        return None
    return {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}.get(
        v.lower(), v
    )


@contextlib.contextmanager
def _text(path: Path) -> Iterator[TextIO]:
    """``path`` as UTF-8 text; bytes that are not UTF-8, or a broken CSV, are one clear error."""
    with path.open(encoding="utf-8", newline="") as fh:
        try:
            yield fh
        except UnicodeDecodeError:
            raise UsageError(f"{path}: not UTF-8 text") from None
        except csv.Error as exc:  # e.g. an unclosed quote running past the field size limit
            raise UsageError(f"{path}: not valid CSV: {exc}") from None


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | RowProblem]]:
    with _text(path) as fh:
        reader = csv.DictReader(fh)
        missing = {"event_id", "type", "sender", "role"} - set(reader.fieldnames or ())
        if missing:
            raise UsageError(f"{path}: CSV header lacks column(s) {', '.join(sorted(missing))}")
        events: dict[str, tuple[int, dict[str, Any]]] = {}
        for row in reader:
            line = reader.line_num
            eid = _blank_to_none(row.get("event_id")) or f"(line {line})"
            if eid not in events:
                events[eid] = (line, _csv_event(row))
            subject = {c: _blank_to_none(row.get(c)) for c in CSV_SUBJECT_COLUMNS if c in row}
            events[eid][1]["subjects"].append({k: v for k, v in subject.items() if v is not None})
    for line, data in events.values():
        yield line, data


def _csv_event(row: dict[str, str | None]) -> dict[str, Any]:
    event: dict[str, Any] = {c: _blank_to_none(row.get(c)) for c in CSV_EVENT_COLUMNS if c in row}
    if isinstance(event.get("need_level"), str) and event["need_level"].isdigit():
        event["need_level"] = int(event["need_level"])
    event["child_present"] = _flag(row.get("child_present"))
    cats = event.get("categories")
    event["categories"] = [c.strip() for c in cats.split(";") if c.strip()] if cats else []
    event["safeguarding"] = {
        "concern": bool(_flag(event.pop("safeguarding_concern", None))),
        "justification": event.pop("safeguarding_justification", None),
    }
    event["subjects"] = []
    return event
