"""Rendering a child's disclosure log for the terminal, CSV, JSON and a standalone HTML
page, and the plain tables the governance report (``_audit_report``) shares.

Only what the report functions return is printed: party ids, clause ids, field names, event
ids, times. Nothing here ever receives a personal value to print.
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
import shutil
import sys
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from broker._words import plural
from broker.cli._audit_lookups import lookup_line, lookups_heading
from broker.governance import DisclosureEntry, answer_notes, reason_legend

if TYPE_CHECKING:
    from broker.audit import AuditRecord
    from broker.policy import Policy

_LOG_COLUMNS = (
    ("at", "when"),
    ("kind", "what"),
    ("outcome", "outcome"),
    ("recipient", "recipient"),
    ("event_type", "event type"),
    ("sender", "from"),
    ("agreement_id", "agreement"),
    ("purpose", "purpose"),
    ("lawful_basis", "lawful basis"),
    ("clauses", "clauses"),
    ("fields_shared", "fields shared"),
    # "Withheld" read, in a SAR, as kept from the family: these were not sent to the recipient.
    ("fields_withheld", "fields not sent"),
    ("consent", "consent"),
    ("reason", "reason"),
    ("override_grounds", "override"),
    ("review", "override review"),
    ("opened_by", "opened by"),
    ("purposes", "consent purposes"),
    ("recipients", "consent recipients"),
    ("valid_until", "consent until"),
    ("recalls", "events recalled"),
    ("event_id", "event"),
    ("audit_ref", "audit ref"),
    ("matched_on", "matched on"),
    # A consent line is at when the broker received it; this is when the authority says it
    # was recorded (earlier): both, so neither hides the other. Last, since it came last: a
    # CSV reader may take columns by position, and every earlier one keeps its place.
    ("recorded_at", "consent recorded"),
)
# CSV only, after every other column (which keeps its place): ``false`` on a share never
# sent, whose ``outcome`` stays as decided (a table or page says "not sent" in its outcome);
# then the fields shared only in a reduced form, ``path=kind; ...`` (a table or page names
# each as what was sent, in its fields shared); then a decision's consent rule (a table or
# page says "not needed" or "overridden" in its consent).
_CSV_ONLY = ("sent", "transforms", "consent_rule")
# A table's line of the log is headed by when, what and its outcome; every other column with
# a value follows on a line of its own, labelled as the CSV's and the page's heading.
_HEAD = ("at", "kind", "outcome")
_LABEL_WIDTH = max(len(h) for k, h in _LOG_COLUMNS if k not in _HEAD)
_INDENT = "  "
#: Where the output is not a terminal (a file, a pipe) and COLUMNS is not set.
DEFAULT_WIDTH = 100
_NARROWEST = 40  # below it a label leaves no room for its value
# Between the grounds of a decision made under several agreements: the nth agreement,
# purpose and lawful basis of a line belong together. (A basis itself holds "; ".)
GROUND_SEPARATOR = " | "
# An empty log found by name and date of birth (the heading says which keys were searched).
NOTHING_FOUND_BY_NAME = (
    "(nothing found by name and date of birth: a child with an NHS number is found only by "
    "it, so ask the requester for it)"
)


def _log_row(entry: DisclosureEntry, *, shown: bool) -> dict[str, Any]:
    """The entry's JSON, with each of agreement, purpose and basis listing every ground;
    ``shown``: the outcome and basis as a reader sees them (``shared, not sent
    (quarantined)``, ``Art 6: public task, Art 6(1)(e)``), not as codes (CSV keeps them)."""
    row = entry.as_dict()
    if shown:
        row["outcome"] = entry.shown_outcome
        row["lawful_basis"] = entry.shown_basis
        row["fields_shared"] = entry.shown_fields
        row["fields_withheld"] = entry.shown_withheld
        row["consent"] = entry.shown_consent
        row["purposes"] = entry.shown_purposes
        row["recipients"] = entry.shown_recipients
    else:
        row["transforms"] = "; ".join(f"{path}={kind}" for path, kind in entry.transforms)
    row["review"] = entry.review.text() if entry.review else None
    grounds = list(
        dict.fromkeys(
            (g.agreement_id, g.purpose, g.shown_basis if shown else g.lawful_basis)
            for g in entry.grounds
        )
    )
    if grounds:
        agreements, purposes, bases = zip(*grounds, strict=True)
        row["agreement_id"] = GROUND_SEPARATOR.join(a or "" for a in agreements)
        row["lawful_basis"] = GROUND_SEPARATOR.join(b or "" for b in bases)
        if entry.kind != "opened":  # an opening's purpose is the one it was opened for
            row["purpose"] = GROUND_SEPARATOR.join(p or "" for p in purposes)
    return row


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain fixed-width table (no colour, so it pastes into a SAR response as is)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)


def output_width() -> int:
    """The terminal's width (COLUMNS first, as a shell sets it); printed to a file or a pipe,
    COLUMNS if set, else ``DEFAULT_WIDTH``: never the width of a terminal it is not on."""
    if sys.stdout.isatty():
        return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns
    # As shutil does, 0 (or less) is not set; nor is what a shell never sets, such as
    # Arabic-Indic digits, which int() would read.
    columns = os.environ.get("COLUMNS", "")
    if columns.isascii() and columns.isdigit() and int(columns) > 0:
        return int(columns)
    return DEFAULT_WIDTH


def _wrapped(text: str, width: int, first: str = "", rest: str = "") -> list[str]:
    # Ids keep their hyphens whole; only a word longer than a whole line is cut.
    return textwrap.wrap(text, width, initial_indent=first, subsequent_indent=rest,
                         break_on_hyphens=False) or [first.rstrip()]  # fmt: skip


def _blocks(rows: Sequence[dict[str, Any]], width: int) -> list[str]:
    """One block a line of the log: when, what and outcome, then each other column that has
    a value, labelled, wrapped to ``width``. A grid of all of them is ~400 wide."""
    out: list[str] = []
    for row in rows:
        head = "  ".join(c for c in (_cell(row[k]) for k in _HEAD) if c)
        out += ["", *_wrapped(head, width, rest=_INDENT)]
        for key, label in _LOG_COLUMNS:
            text = _cell(row[key])
            if key in _HEAD or not text:
                continue
            first = f"{_INDENT}{label.ljust(_LABEL_WIDTH)}  "
            out += _wrapped(text, width, first, " " * len(first))
    return out


def disclosure(
    entries: Sequence[DisclosureEntry],
    fmt: str,
    *,
    searched: str | None = None,
    produced: Sequence[str] = (),
    width: int = DEFAULT_WIDTH,
    conditions: bool = False,
    policy: Policy | None = None,
    lookups: Sequence[AuditRecord] | None = None,
) -> str:
    """The log in ``fmt``; ``searched`` (what a look-up by demographics searched, naming no
    one) heads the table and the page, and stays out of CSV and JSON, whose shape is fixed.
    ``produced`` (when, by whom, what was searched, the log's verification state) heads the
    HTML page, the attachment a SAR response carries. A table's lines fit in ``width``.
    ``conditions``: a table's notes name each condition its ``condition-false`` lines did not
    meet, from ``policy`` (the bundle loaded here, None if none is), as the console's do.
    ``lookups``: the child's earlier look-ups (``governance.earlier_lookups``), listed under a
    table's log, as the console's page lists them. JSON, CSV and the family's page are the
    log's alone: a script reads each line as a log entry, and a copy passed on as the SAR
    answer must not carry staff logins."""
    if fmt == "json":
        return json.dumps([e.as_dict() for e in entries], indent=2, ensure_ascii=False)
    keys = [k for k, _ in _LOG_COLUMNS]
    heads = [h for _, h in _LOG_COLUMNS]
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow([*keys, *_CSV_ONLY])
        for e in entries:
            row = _log_row(e, shown=False)
            writer.writerow([_cell(row[k]) for k in (*keys, *_CSV_ONLY)])
        return buf.getvalue().rstrip("\n")
    rows = [[d[k] for k in keys] for d in (_log_row(e, shown=True) for e in entries)]
    if fmt == "html":  # the family's page: what a condition says is the officer's to explain
        note = plural(len(entries), "entry", "entries") + (f"; {searched}" if searched else "")
        legend = reason_legend(entries)
        return _html_page("Disclosure log", heads, rows, note, produced, legend=legend,
                          notes=answer_notes(entries))  # fmt: skip
    width = max(width, _NARROWEST)
    notes = answer_notes(entries, conditions=conditions, policy=policy)
    lines = _wrapped(f"Disclosure log: {plural(len(entries), 'entry', 'entries')}, oldest first",
                     width)  # fmt: skip
    if searched:
        lines += _wrapped(f"{searched[:1].upper()}{searched[1:]}", width)
    for text in notes:  # once, above the lines they explain
        lines += _wrapped(text, width)
    logged = [dict(zip(keys, row, strict=True)) for row in rows]
    # By name, "nothing recorded" would be taken for nothing held: the heading says why not.
    empty = "(nothing recorded)" if searched is None else NOTHING_FOUND_BY_NAME
    lines += _blocks(logged, width) if entries else _wrapped(empty, width)
    if lookups is not None:
        lines += ["", *_wrapped(lookups_heading(lookups), width)]
        for r in lookups:
            lines += _wrapped(lookup_line(r), width, _INDENT, _INDENT * 2)
    return "\n".join(lines)


def _html_page(
    title: str,
    heads: Sequence[str],
    rows: Sequence[Sequence[object]],
    note: str,
    produced: Sequence[str] = (),
    *,
    legend: Sequence[tuple[str, str]] = (),
    notes: Sequence[str] = (),
) -> str:
    """``legend``: the reason codes the rows show, with their meanings: the page goes to a
    family, to whom a code alone says nothing; ``notes``: what the page says once (what
    travels with every shared record), under the table."""
    esc = html.escape
    about = "".join(f"<li>{esc(line)}</li>" for line in produced)
    about = f'<ul id="produced">{about}</ul>' if about else ""
    head = "".join(f"<th>{esc(h)}</th>" for h in heads)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(_cell(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    meanings = "".join(f"<dt><code>{esc(c)}</code></dt><dd>{esc(t)}</dd>" for c, t in legend)
    if meanings:
        meanings = f'<h2>What the reasons mean</h2><dl id="reasons">{meanings}</dl>'
    if notes:
        meanings += (
            '<h2>Notes</h2><ul id="notes">' + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>"
        )
    return (
        '<!doctype html>\n<html lang="en-GB"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>body{{font-family:sans-serif}}"
        "table{border-collapse:collapse}td,th{border:1px solid #999;padding:2px 6px;"
        "font-size:90%;text-align:left;vertical-align:top}</style></head><body><main>"
        f"<h1>{esc(title)}</h1>{about}<p>{esc(note)}</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{meanings}"
        "</main></body></html>"
    )


COPY_AS_IT_WAS = (
    "made from a copy of the audit index (--db), shown as it was: not caught up from the "
    "audit log, so anything logged since the copy was taken is missing"
)


def state_warning(state: str, *, copy: bool, failed: bool) -> str | None:
    """The line a SAR's table, CSV or JSON puts on stderr, outside the data, where the page's
    header says it: made from a copy (shown as it was, and what verifying it now found), or
    from an index whose last verification failed; None otherwise. ``state``: the header's."""
    state = " ".join(state.split())  # one line, whatever a failure's text holds
    if copy:
        return f"accord: warning: this answer was {COPY_AS_IT_WAS}; audit log: {state}"
    if failed:
        return f"accord: warning: the audit log did not verify: {state}"
    return None
