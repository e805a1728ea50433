"""An agreement that decides nothing for its status or its dates, said in words.

``decide`` gives every clause of such an agreement ``agreement-inactive``, one reason for
four faults fixed in different places: a draft, a suspension, an approval that has lapsed
(``valid_until`` is its last day) and one not yet begun. ``accord policy explain`` says
which (``inactive_reason``). ``accord policy check`` has no event, only today: it warns of
an approved agreement that has lapsed, which its authors may believe still shares, and
notes one not yet begun, as approving an agreement ahead of its start is usual
(``dated_notes``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from broker.policy._decision import Decision
from broker.policy._layout import agreement_files
from broker.policy._model import Agreement, Bundle

__all__ = ["dated_notes", "inactive_reason", "inactive_why"]


def inactive_why(agreement: Agreement, day: date) -> str | None:
    """Why ``agreement`` decides nothing on ``day`` (``draft``, ``suspended``, ``lapsed
    DATE``, ``starts DATE``), or None: it is in force."""
    if agreement.status != "approved":
        return agreement.status
    if day > agreement.valid_until:
        return f"lapsed {agreement.valid_until.isoformat()}"
    if day < agreement.valid_from:
        return f"starts {agreement.valid_from.isoformat()}"
    return None


def inactive_reason(bundle: Bundle, decision: Decision, *, at: datetime) -> str | None:
    """Why an ``agreement-inactive`` decision's agreements were not in force at ``at`` (the
    day as ``decide`` takes it, in UTC): the one reason alone, or each agreement's named
    when its clauses come from several. None for any other decision."""
    if decision.reason != "agreement-inactive":
        return None
    day = at.astimezone(UTC).date()
    agreements = {a.id: a for a in bundle.agreements}
    said = [
        (aid, why)
        for aid in dict.fromkeys(g.agreement_id for g in decision.grounds)
        if (found := agreements.get(aid)) is not None and (why := inactive_why(found, day))
    ]
    if len(said) == 1:
        return said[0][1]
    return "; ".join(f"{aid}: {why}" for aid, why in said) or None


def dated_notes(bundle: Bundle, day: date, root: Path | None = None) -> list[tuple[str, str]]:
    """``(level, line)`` for each approved agreement outside its dates on ``day``: a
    ``warning`` for one that has lapsed, a ``note`` for one not yet begun; each line names
    the agreement, and its file when ``root`` is the folder the bundle was loaded from."""
    files = agreement_files(root) if root is not None else []
    # A bundle that loaded has one agreement per file, in file order (``read_bundle``).
    named = len(files) == len(bundle.agreements)
    out: list[tuple[str, str]] = []
    for i, agreement in enumerate(bundle.agreements):
        if agreement.status != "approved":
            continue
        where = f"{files[i].relative_to(root).as_posix()}: " if named and root else ""
        what = f"{where}agreement {agreement.id!r}"
        if day > agreement.valid_until:
            out.append((
                "warning",
                f"{what} is approved but has lapsed (valid_until "
                f"{agreement.valid_until.isoformat()}): it shares nothing; renew it (a new "
                "version with a later valid_until) or set status: suspended",
            ))  # fmt: skip
        elif day < agreement.valid_from:
            out.append((
                "note",
                f"{what} is approved but starts on {agreement.valid_from.isoformat()} "
                "(valid_from): it shares nothing before then",
            ))  # fmt: skip
    return out
