"""The governance report (``accord audit report``) for the terminal and as JSON.

Only what ``governance_report`` returns is printed: counts, party, agreement and event ids,
times; never a personal value. The tables and the words for a report made from a copy are
``_audit_render``'s, shared with the disclosure log.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from broker.cli._audit_render import COPY_AS_IT_WAS, GROUND_SEPARATOR, table
from broker.governance import GovernanceReport, KeysLoaded, late_by_school


def report_json(rep: GovernanceReport, broken_chains: Sequence[str] = (), *,
                copy: bool = False) -> str:  # fmt: skip
    """The report as JSON; ``broken_chains``: the chains the indexer found broken, whose
    records past the break the report cannot count; ``copy``: made from a copy, read as it
    was (``index_role`` and ``caught_up`` say so, in every report: the shape stays)."""

    def iso(v: Any) -> Any:
        return v.isoformat() if v is not None else None

    data = {
        "since": iso(rep.since),
        "until": iso(rep.until),
        "index_role": "copy" if copy else "configured",
        "caught_up": not copy,
        "broken_chains": list(broken_chains),
        "decisions_total": rep.decisions_total,
        "decisions": [
            {"agreement_id": d.agreement_id, "recipient": d.recipient, "outcome": d.outcome,
             "reason": d.reason, "count": d.count}
            for d in rep.decisions
        ],
        "pending_overrides": [
            {"event_id": p.event_id, "recipient": p.recipient, "decided_at": iso(p.decided_at),
             "sender": p.sender, "event_type": p.event_type, "agreement_id": p.agreement_id,
             "clauses": list(p.clauses), "grounds": p.grounds,
             "agreements": [g.as_dict() for g in p.agreements]}
            for p in rep.pending_overrides
        ],
        "reviewed_overrides": [
            {"event_id": r.event_id, "recipient": r.recipient, "decided_at": iso(r.decided_at),
             "sender": r.sender, **r.status.as_dict()}
            for r in rep.reviewed
        ],
        "quarantine": [{"reason": r, "count": n} for r, n in rep.quarantine],
        "expiring_agreements": None if rep.expiring is None else [
            {"agreement_id": e.agreement_id, "title": e.title, "status": e.status,
             "valid_until": e.valid_until.isoformat(), "days_left": e.days_left}
            for e in rep.expiring
        ],
        "deliveries": [
            {"recipient": r.recipient, "delivered": r.delivered, "unopened": r.unopened}
            for r in rep.deliveries
        ],
        "never_opened": [r.recipient for r in rep.never_opened],
        "operation_encompass": {
            "unsent_by_school": late_by_school(list(rep.encompass_unsent)),
            "unsent": [
                {"school": n.school, "event_id": n.event_id, "decided_at": iso(n.decided_at),
                 "reason": "recipient-key-unavailable"}
                for n in rep.encompass_unsent
            ],
            "late_by_school": late_by_school(list(rep.encompass_late)),
            "late": [
                {"school": n.school, "event_id": n.event_id, "notified_at": iso(n.notified_at),
                 "deadline": iso(n.deadline), "acknowledged_at": iso(n.acknowledged_at),
                 "state": n.state}
                for n in rep.encompass_late
            ],
        },
        # Counts, versions and who ran each: a run names no child (``_impacts``).
        "policy_impacts": [r.as_dict() for r in rep.impacts],
        # The workers' key directories and changes: party and key ids only (``_keys_loaded``).
        "keys_loaded": [k.as_dict() for k in rep.keys],
        "withdrawal_notices": [
            {"at": iso(n.at), "withdrawal_id": n.withdrawal_id, "recipient": n.recipient,
             "event_ids": list(n.event_ids), "purposes": list(n.purposes),
             "state": "undelivered" if n.undelivered else "delivered",
             "undelivered": n.undelivered, "action_needed": n.undelivered is not None}
            for n in rep.withdrawals
        ],
    }  # fmt: skip
    return json.dumps(data, indent=2, ensure_ascii=False)


def report_text(rep: GovernanceReport, *, copy: bool = False) -> str:
    since = rep.since.isoformat() if rep.since else "the beginning"
    until = rep.until.isoformat() if rep.until else "now"
    out = [f"Accord governance report: {since} to {until}"]
    out += [f"This report was {COPY_AS_IT_WAS}.", ""] if copy else [""]
    out += ["Decisions by agreement, recipient and outcome"]
    out += [
        table(
            ("agreement", "recipient", "outcome", "reason", "count"),
            [
                (d.agreement_id or "-", d.recipient, d.outcome, d.reason, d.count)
                for d in rep.decisions
            ],
        ),
        _decisions_note(rep),
    ]
    out += ["", f"Safeguarding overrides awaiting review: {len(rep.pending_overrides)}"]
    if rep.pending_overrides:
        out += [
            table(
                ("decided at", "event", "recipient", "from", "agreement", "clauses", "grounds"),
                [
                    (
                        p.decided_at.isoformat(),
                        p.event_id,
                        p.recipient,
                        p.sender,
                        _agreements((g.agreement_id for g in p.agreements), p.agreement_id),
                        p.clauses,
                        p.grounds,
                    )
                    for p in rep.pending_overrides
                ],
            )
        ]
    out += ["", f"Safeguarding overrides reviewed in the period: {len(rep.reviewed)}"]
    if rep.reviewed:
        out += [
            table(
                ("reviewed at", "event", "recipient", "finding", "reviewer", "reference"),
                [
                    (r.status.reviewed_at.isoformat() if r.status.reviewed_at else "",
                     r.event_id, r.recipient, r.status.finding_text, r.status.reviewed_by,
                     r.status.reference or "")
                    for r in rep.reviewed
                ],
            )
        ]  # fmt: skip
    out += ["", "Quarantine by reason"]
    out += [table(("reason", "count"), rep.quarantine) if rep.quarantine else "(none)"]
    out += ["", "Agreements expiring within 60 days"]
    if rep.expiring is None:
        out += ["(not checked: no policy bundle; give --policies DIR or set ACCORD_POLICIES)"]
    elif not rep.expiring:
        out += ["(none)"]
    else:
        out += [
            table(
                ("agreement", "status", "valid until", "days left", "title"),
                [
                    (e.agreement_id, e.status, e.valid_until.isoformat(), e.days_left, e.title)
                    for e in rep.expiring
                ],
            )
        ]
    out += ["", *_impacts_text(rep), "", *_keys_text(rep)]
    out += ["", "Deliveries and openings by recipient"]
    out += [
        table(
            ("recipient", "delivered", "never opened"),
            [(r.recipient, r.delivered, r.unopened) for r in rep.deliveries],
        )
        if rep.deliveries
        else "(none)"
    ]
    never = ", ".join(r.recipient for r in rep.never_opened) or "(none)"
    out += ["", f"Recipients that received records but opened none: {never}"]
    return "\n".join([*out, "", *_withdrawals_text(rep), "", *_encompass_text(rep)])


def _decisions_note(rep: GovernanceReport) -> str:
    """The decisions made, each once, under the table that counts one made under several
    agreements under each: without it the table's sum reads as the number made."""
    listed = sum(d.count for d in rep.decisions)
    note = f"Decisions made: {rep.decisions_total:,}."
    if listed != rep.decisions_total:
        note += (
            " A decision made under several agreements is counted under each of them above,"
            f" so the counts add up to {listed:,}."
        )
    return note


def _impacts_text(rep: GovernanceReport) -> list[str]:
    """Who compared which proposed bundle with the one in force, and what it counted; the
    versions cut as ``accord policy impact`` prints them (the JSON has them whole)."""
    out = [f"Policy impact runs (accord policy impact): {len(rep.impacts)}"]
    if not rep.impacts:
        return [*out, "(none)"]
    rows = [
        (r.at.isoformat(), r.by, f"{r.current_version[:19]} -> {r.new_version[:19]}",
         r.events, r.decisions,
         "nothing compared" if r.nothing_compared else r.changed,
         r.stops, r.starts, r.consent_records_changed, r.reopening,
         r.unversioned_agreements)
        for r in rep.impacts
    ]  # fmt: skip
    heads = ("run at", "by", "in force -> proposed", "events", "decisions", "changed",
             "stop", "start", "consent records", "reopening", "unversioned")  # fmt: skip
    out += [table(heads, rows)]
    # Each run's own (runs of one proposal, or of rejected ones, are not to be added up).
    if any(r.reopening for r in rep.impacts):
        out += ["reopening: withdrawals or refusals on file that the proposed bundle would stop "
                "counting (sharing they stopped would resume)"]  # fmt: skip
    if any(r.unversioned_agreements for r in rep.impacts):
        out += ["unversioned: agreements the proposed bundle changes without a new version"]
    for r in rep.impacts:
        if r.new_senders_not_read:
            out += [f"The run at {r.at.isoformat()} did not read new sender(s) "
                    f"{', '.join(r.new_senders_not_read)} (no topic yet): none of their events "
                    "was compared"]  # fmt: skip
    return out


def _keys_text(rep: GovernanceReport) -> list[str]:
    """The workers' key directories in use and each change to them, oldest first; each
    change's key ids below the table, by party (whole: they are what a revocation names)."""
    out = [f"Worker key directories and changes (keys_loaded): {len(rep.keys)}"]
    if not rep.keys:
        return [*out, "(none)"]

    def what(k: KeysLoaded) -> str:
        if k.occasion != "changed":
            return "in use"
        counts = ", ".join(f"{k.count(c)} {c}" for c in KeysLoaded.CHANGES if k.count(c))
        return f"changed from serial {k.serial_before}: {counts or 'statuses only'}"

    rows = [(k.first.isoformat(), k.last.isoformat(), k.chains, k.serial, k.signer or "-",
             what(k)) for k in rep.keys]  # fmt: skip
    out += [table(("first recorded", "last recorded", "chains", "serial", "directory signed by",
                   "what"), rows)]  # fmt: skip
    for k in rep.keys:
        for change in KeysLoaded.CHANGES:
            for party, ids in k.changes.get(change, {}).items():
                out += [f"  serial {k.serial} ({k.first.isoformat()}): {change} {party}: "
                        + ", ".join(ids)]  # fmt: skip
    return out


def _withdrawals_text(rep: GovernanceReport) -> list[str]:
    notices, undelivered = rep.withdrawals, rep.undelivered_notices
    out = [f"Consent withdrawal notices: {len(notices)}, undelivered: {len(undelivered)}"]
    if undelivered:
        out += [
            "ACTION NEEDED: these recipients were not told to stop; tell each by other means",
            table(
                ("logged at", "recipient", "why", "withdrawal", "events recalled"),
                [(n.at.isoformat(), n.recipient, n.undelivered, n.withdrawal_id, n.event_ids)
                 for n in undelivered],
            ),
        ]  # fmt: skip
    delivered = [n for n in notices if not n.undelivered]
    if delivered:
        out += [
            "Delivered",
            table(
                ("logged at", "recipient", "withdrawal", "events recalled"),
                [(n.at.isoformat(), n.recipient, n.withdrawal_id, n.event_ids) for n in delivered],
            ),
        ]
    return out if notices else [*out, "(none)"]


def _encompass_text(rep: GovernanceReport) -> list[str]:
    return [*_unsent_text(rep), "", *_late_text(rep)]


def _unsent_text(rep: GovernanceReport) -> list[str]:
    """First: worse than late, these will never be read."""
    unsent = rep.encompass_unsent
    out = [
        f"Operation Encompass: notices never sent, the school having no usable key: {len(unsent)}"
    ]
    if not unsent:
        return [*out, "(none)"]
    counts = ", ".join(f"{school}: {n}" for school, n in late_by_school(list(unsent)).items())
    return [
        *out,
        f"By school: {counts}",
        "ACTION NEEDED: these will never be read; ring each school's Key Adult, and put its "
        "keys in the signed key directory (docs/operations.md, 'A recipient has no usable key')",
        table(("school", "event", "decided"),
              [(n.school, n.event_id, n.decided_at.isoformat()) for n in unsent]),
    ]  # fmt: skip


def _late_text(rep: GovernanceReport) -> list[str]:
    late = rep.encompass_late
    out = [f"Operation Encompass: notices read late or unread past their deadline: {len(late)}"]
    if not late:
        return [*out, "(none)"]
    counts = ", ".join(f"{school}: {n}" for school, n in late_by_school(list(late)).items())
    out += [f"By school: {counts}"]
    rows = [
        (n.school, n.event_id, n.notified_at.isoformat(), n.deadline.isoformat(),
         n.acknowledged_at.isoformat() if n.acknowledged_at else "not yet")
        for n in late
    ]  # fmt: skip
    return [*out, table(("school", "event", "notified", "deadline", "acknowledged"), rows)]


def _agreements(listed: Iterable[str | None], first: str | None) -> str | None:
    """Every agreement a decision was made under, as the disclosure log lists them; a
    record written before decisions listed their grounds has its ``first`` only."""
    ids = dict.fromkeys(a or "" for a in listed)
    return GROUND_SEPARATOR.join(ids) if ids else first
