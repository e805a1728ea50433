"""Which conditions a ``condition-false`` line of a disclosure log did not meet.

The reason's meaning (``_reasons``) says only that a clause applies in certain circumstances
and these were not met; the officer answering a SAR or a complaint needs which. The decision
names its clauses (``grounds``, ``clause_ids``) and the policy version it was made under, so
each clause's ``when`` is read from the bundle loaded here, but only when it is that version:
a clause of another version may say something else. A ``when`` is policy text, never a value
of the event, so it names no one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from broker.policy import Policy

_WHAT = "Condition not met (condition-false)"


def _clauses(line: object) -> tuple[list[tuple[str, str]], bool]:
    """(agreement, clause) for each clause the line names, and whether each pairing is
    recorded: its grounds; or, for a record written before decisions listed them, its one
    agreement id beside every clause id, which may belong to another agreement (clause ids are
    unique within an agreement only)."""
    named = [
        (g.agreement_id, g.clause_id)
        for g in getattr(line, "grounds", ())
        if g.agreement_id and g.clause_id
    ]
    if named:
        return named, True
    agreement = getattr(line, "agreement_id", None) or ""
    return [(agreement, c) for c in getattr(line, "clauses", ())], False


def _owners(policy: Policy, clause_id: str) -> dict[str, str | None]:
    """Each agreement of ``policy`` with a clause ``clause_id``: its ``when``."""
    return {
        agreement.id: clause.when
        for agreement in policy.bundle.agreements
        for clause in agreement.clauses
        if clause.id == clause_id
    }


def unmet_conditions(lines: Iterable[object], policy: Policy | None) -> list[str]:
    """A note for each clause the log's ``condition-false`` decisions name, once, with its
    ``when`` from ``policy`` when that is the version the decision was made under; else why
    it is not shown and where to read it. ``policy`` None: no bundle is loaded here."""
    notes: dict[tuple[str, str, str], str] = {}
    for line in lines:
        if getattr(line, "kind", None) != "decision" or getattr(line, "reason", None) != (
            "condition-false"
        ):
            continue
        version = str(getattr(line, "policy_version", None) or "")
        pairs, recorded = _clauses(line)
        for agreement_id, clause_id in pairs:
            key = (agreement_id, clause_id, version)
            if key not in notes:
                notes[key] = _note(agreement_id, clause_id, version, policy, recorded=recorded)
    return list(dict.fromkeys(notes.values()))  # two pairings can come to one clause


def _note(
    agreement_id: str, clause_id: str, version: str, policy: Policy | None, *, recorded: bool
) -> str:
    named = f"{_WHAT}, {agreement_id} / {clause_id}" if agreement_id else f"{_WHAT}, {clause_id}"
    decided = f"policy version {version}" if version else "a policy version not recorded"
    # A version is a hash of the bundle: its folder is found in the policy repository's
    # history, and 'accord policy check' says which version a folder is.
    where = (
        f"read the clause's 'when' in the bundle of {decided} ('accord policy check DIR'"
        " prints a bundle's version)"
    )
    if policy is None:
        return (
            f"{named}: no policy bundle is loaded here (ACCORD_POLICIES) to read its"
            f" condition from; {where}."
        )
    if version != policy.version:
        return (
            f"{named}: bundle version differs: decided under {decided}, the bundle loaded here"
            f" is version {policy.version}; {where}."
        )
    owners = _owners(policy, clause_id)
    if recorded:
        when = owners.get(agreement_id)
    elif len(owners) == 1:
        # Recorded before decisions paired each clause with its agreement: the bundle that
        # decided it has one clause of this id, so that is the clause, whichever agreement
        # the record names beside it.
        [(agreement_id, when)] = owners.items()
        named = f"{_WHAT}, {agreement_id} / {clause_id}"
    elif owners:
        # The bundle is the one that decided; which of its agreements' clauses is what the
        # record does not say, so each is given, and the officer weighs them with the event.
        each = "; ".join(
            f"{a}: when {' '.join((w or '(no condition)').split())}"
            for a, w in sorted(owners.items())
        )
        return (
            f"{named}: this decision was recorded before decisions named each clause's"
            f" agreement, and {len(owners)} agreements of its bundle have a clause"
            f" '{clause_id}', so the record cannot tell which one's condition was not met."
            f" Their conditions: {each}"
        )
    else:
        when = None
    if when is None:
        return f"{named}: the bundle loaded here has no condition for this clause."
    return f"{named}: when {' '.join(when.split())}"
