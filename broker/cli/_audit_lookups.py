"""The earlier look-ups of a child's disclosure log, as ``accord audit subject`` shows them:
who looked the child up, when, why and from where, as the console's *Find a child* page
lists them (``broker/console/templates/subject.html``), and in the same words.

Only what a look-up's record holds about the look-up is printed: the officer's account, the
reason chosen, the page, a quarantine copy's id. Never its subject keys: a report's look-up
names other children too, and this child's keys are printed above already.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from broker._words import plural
from broker.audit import AuditKind
from broker.governance import VIA_WORDS, lookup_via

if TYPE_CHECKING:
    from broker.audit import AuditRecord

#: What the page says when the current look-up is the first.
NONE_BEFORE = "None before this one."


def _via(record: AuditRecord) -> tuple[str, str]:
    """``(cli|console, the words for it)``: the console's rule and words, so a look-up is
    said to come from the same place on its page and here."""
    via = lookup_via(record)
    return via, VIA_WORDS[via]


def _text(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) and value else None


def _purpose(record: AuditRecord) -> str | None:
    if record.kind is AuditKind.QUARANTINE_OPENED:
        return _text(record.data, "purpose")
    detail = record.data.get("detail")
    return _text(detail, "purpose") if isinstance(detail, dict) else None


def lookup_line(record: AuditRecord) -> str:
    """One look-up in the console page's words (``subject.html``)."""
    at = f"{record.at:%Y-%m-%d %H:%M} UTC"
    officer = _text(record.data, "officer") or "(no account recorded)"
    where = _via(record)[1]
    why = (_purpose(record) or "no reason given").replace("_", " ")
    if record.kind is AuditKind.QUARANTINE_OPENED:
        copy = _text(record.data, "copy") or "?"
        return f"{at}: quarantined record opened by {officer} for {why} (copy {copy}, from {where})"
    return f"{at}: {officer} from {where} ({why})"


def lookups_heading(records: Sequence[AuditRecord]) -> str:
    """The section's heading: how many, and that this run's own look-up is not among them
    (it is written to the audit log, and listed the next time the child is looked up)."""
    if not records:
        return f"Earlier look-ups of this log: {NONE_BEFORE.lower().rstrip('.')}"
    return (
        f"Earlier look-ups of this log: {plural(len(records), 'look-up')}, oldest first "
        "(this one is not listed)"
    )
