"""Reviewing a safeguarding override: the reviewer's action is itself an audit record.

The review is never written to the index directly. It is appended to the reviewer's own chain
(``console:<host>``) on ``accord.audit`` by a :class:`ChainAppender`, with a signed checkpoint,
and the indexer files it in ``override_reviews`` when it reads it back, so no
review can exist that the tamper-evident log does not hold.

A review carries no free text. The log is append-only and kept forever, so a note about a
child written into it could never be corrected or erased. The record holds the officer's
finding (:class:`ReviewFinding`) and, optionally, a reference to where the reasoning is kept,
constrained to an identifier. Reviews written before this rule kept a ``note``; the indexer
still files it, as the log holds it.
"""

from __future__ import annotations

import enum
import re
from datetime import datetime
from typing import Any

from broker.audit import AuditKind, AuditRecord, ChainWriter
from broker.errors import UsageError
from broker.events import is_valid_nhs_number
from broker.governance._append import AuditSink
from broker.governance._store import AuditStore


class ReviewFinding(enum.StrEnum):
    """What the reviewing officer concluded about a safeguarding override."""

    JUSTIFIED = "justified"
    NOT_JUSTIFIED = "not_justified"


# A reference to where the reasoning is kept (an IG case, a ticket): an identifier, never a
# narrative (no spaces, 40 characters). A case or ticket reference always carries its number,
# so one with no digit is refused: it is a name written as an identifier (Jane-Smith) or a
# word, and the log must hold subject keys only. A name with a number in it (Ruby.Holland2)
# still cannot be told from a case number; the form and the help ask for the case number.
_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:-]{0,39}\Z")
_A_DIGIT = re.compile(r"[0-9]")
# An NHS number or a telephone number however it is grouped (943-476-5919, 07700.900123,
# 020-7946-0000, 20-7946-0000, IG/94/34/76/59/19), but not a case number such as
# IG-2026-000123, whose ten digits are as many as an NHS number's. Each run of digit groups
# joined by separators is tried group by group, so a number inside a longer reference is
# found too.
_DIGIT_GROUPS = re.compile(r"\d+(?:[-./:_]+\d+)*")
_SEPARATOR = re.compile(r"[-./:_]+")


def _holds_a_number(reference: str) -> bool:
    for run in _DIGIT_GROUPS.finditer(reference):
        groups = _SEPARATOR.split(run.group())
        for first in range(len(groups)):
            for last in range(first + 1, len(groups) + 1):
                if _could_be_personal(groups[first:last]):
                    return True
    return False


def _could_be_personal(groups: list[str]) -> bool:
    """True for digit groups that could be one NHS (or CHI) number or telephone number."""
    digits = "".join(groups)
    if len(digits) < 10:
        return False
    if len(groups) == 1 or _telephone(digits):
        return True  # ten digits in a row; a telephone number as dialled, or from abroad
    if len(digits) != 10:
        return False
    lengths = [len(g) for g in groups]
    if lengths == [3, 3, 4] or digits.startswith("7"):
        return True  # an NHS number as it is printed, even mistyped; a mobile without its 0
    if _printed_without_its_0(digits, lengths):
        return True
    # Regrouped, it is a number only if it passes the check digit and lies where numbers are
    # issued: 3 to 9 first (England, Wales, Northern Ireland, the 999 test range), or a
    # Scottish CHI number, which starts with its holder's date of birth (ddmmyy). A case
    # number that is neither, such as IG-2026-000123 (a 26th month), is taken.
    return is_valid_nhs_number(digits) and (digits[0] >= "3" or _is_ddmmyy(digits[:6]))


def _telephone(digits: str) -> bool:
    """A UK number as dialled: eleven digits from 0 (07700 900123, 020 7946 0000), ten from
    01 or 08 (some areas' numbers, 0800's); or from abroad, 44 and ten more. Ten digits from
    00, 02, 05 or 07 are not a number anyone dials, but they are a month or a sequence
    (IG/07/2026/0042, REQ-000123-2026)."""
    if digits.startswith("0"):
        return len(digits) >= 11 or digits.startswith(("01", "08"))
    return digits.startswith("44") and len(digits) >= 12


def _printed_without_its_0(digits: str, lengths: list[int]) -> bool:
    """A London number as it is printed after +44, its 0 dropped: 20 7946 0000. London's
    local numbers start with 3, 7 or 8, so case numbers grouped 2-4-4 from 20 (20-2026-0042)
    are still taken. Other areas' numbers without their 0 share their shapes with year and
    sequence references (1632 960000 with 1999 000123), and are not refused; 121 496 0000 is
    grouped as an NHS number, and is."""
    return lengths == [2, 4, 4] and digits[:2] == "20" and digits[2] in "378"


def _is_ddmmyy(text: str) -> bool:
    try:
        datetime.strptime(text, "%d%m%y")  # noqa: DTZ007 -- a calendar check, not a time
    except ValueError:
        return False
    return True


def reference_acceptable(reference: str) -> bool:
    """Whether ``reference`` may go into the log as a review's reference (and be drawn again
    on a refused form: one that is not might hold a number, a name or a note about a person)."""
    return (
        bool(_REFERENCE.match(reference))
        and bool(_A_DIGIT.search(reference))
        and not _holds_a_number(reference)
    )


def check_review(*, reviewed_by: str, finding: str, reference: str | None) -> ReviewFinding:
    """The finding, or ``UsageError`` unless the review can go into the log as given."""
    if not reviewed_by.strip():
        raise UsageError("--as: name the console account that reviewed the override")
    try:
        found = ReviewFinding(finding.replace("-", "_"))
    except ValueError:
        raise UsageError("--finding: give justified or not-justified") from None
    if reference is not None and not reference_acceptable(reference):
        raise UsageError(
            "--reference: give the IG case or ticket reference where your reasoning is kept, "
            "which carries its case number, e.g. IG-2026-0142 (up to 40 letters, digits and "
            ". _ / : -, never an NHS or telephone number however it is grouped), never a note "
            "or a name"
        )
    return found


def check_reviewable(store: AuditStore, event_id: str, recipient: str) -> AuditRecord:
    """The override decision to review; ``UsageError`` when there is none or it is reviewed."""
    decision = store.find_decision(event_id, recipient)
    # The values typed are not repeated: a mistyped id or recipient may be an NHS number or
    # a name, and the message reaches a terminal, a flash message and the logs.
    if decision is None or decision.data.get("outcome") != "shared_override":
        raise UsageError("no safeguarding override for that event and recipient in the audit index")
    done = store.review_of(event_id, recipient)
    if done is not None:
        raise UsageError(
            "the override for that event and recipient was already reviewed "
            f"by {done.reviewed_by} at {done.reviewed_at.isoformat()}"
        )
    return decision


def review_record(
    writer: ChainWriter,
    decision: AuditRecord,
    *,
    reviewed_by: str,
    finding: ReviewFinding,
    reference: str | None,
) -> AuditRecord:
    """The ``override_reviewed`` record for ``decision``, appended to ``writer``'s chain."""
    data: dict[str, Any] = {
        "reviewed_by": reviewed_by.strip(),
        "finding": finding.value,
        "decision": {"chain": decision.chain, "seq": decision.seq, "hash": decision.hash},
    }
    if reference is not None:
        data["reference"] = reference
    return writer.append(
        AuditKind.OVERRIDE_REVIEWED,
        event_id=decision.event_id,
        party=decision.party,
        subject_keys=decision.subject_keys,
        data=data,
    )


async def review_override(
    store: AuditStore,
    appender: AuditSink,
    *,
    event_id: str,
    recipient: str,
    reviewed_by: str,
    finding: str,
    reference: str | None = None,
) -> AuditRecord:
    """Record an officer's finding on an override in the audit log (then index it)."""
    found = check_review(reviewed_by=reviewed_by, finding=finding, reference=reference)
    decision = check_reviewable(store, event_id, recipient)
    records = await appender.append(
        lambda writer: [
            review_record(
                writer, decision, reviewed_by=reviewed_by, finding=found, reference=reference
            )
        ]
    )
    return records[0]
