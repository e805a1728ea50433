"""A decision: for one event and one candidate recipient, what is shared, why, on which basis.

Everything an IG officer needs to review it, and nothing that identifies a person: subjects
appear as positions in the event's ``subjects`` list and counts by role, never as values.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from broker.policy._model import LawfulBasis

__all__ = [
    "REASON_PRECEDENCE",
    "ClauseRef",
    "ConsentRule",
    "ConsentStateOut",
    "Decision",
    "Outcome",
    "Reason",
]

Outcome = Literal["shared", "shared_override", "not_shared"]
Reason = Literal[
    "no-agreement",
    "agreement-inactive",
    "condition-false",
    "consent-missing",
    "consent-refused",
    "consent-withdrawn",
    "suppressed",
    "party-inactive",
    # Given by the worker, not the engine: the policy would share, but nothing can be sealed
    # to the recipient (docs/policy-language.md §7).
    "recipient-key-unavailable",
]
ConsentStateOut = Literal["given", "refused", "withdrawn", "missing"]
ConsentRule = Literal["not_required", "required", "required_unless_safeguarding"]

# Highest first (docs/policy-language.md §6, step 6); party-inactive is decided before any
# clause is looked at.
REASON_PRECEDENCE: Final[tuple[str, ...]] = (
    "party-inactive",
    "suppressed",
    "consent-withdrawn",
    "consent-refused",
    "consent-missing",
    "condition-false",
    "agreement-inactive",
    "no-agreement",
)


class ClauseRef(BaseModel):
    """One clause that grounds (or, for a refusal, explains) a decision."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agreement_id: str
    agreement_version: str
    clause_id: str
    purpose: str
    lawful_basis: LawfulBasis
    consent: ConsentRule


class SubjectScope(BaseModel):
    """What one person's entry may hold when clauses covering different people combine.

    Minimum necessary: each person gets the union of the clauses whose ``subjects`` include
    them, not every field any clause shares about anyone.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    subject: int
    fields: tuple[str, ...]
    transforms: dict[str, str] = {}


class Decision(BaseModel):
    """The outcome for one recipient of one event (docs/policy-language.md §6)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: UUID
    event_type: str
    sender: str
    recipient: str
    recipient_kind: str
    outcome: Outcome
    reason: Reason | None = None
    clause_ids: tuple[str, ...] = ()
    agreement_id: str | None = None
    agreement_version: str | None = None
    purpose: str | None = None
    lawful_basis: LawfulBasis | None = None
    consent: ConsentStateOut = "missing"
    consent_rule: ConsentRule | None = None
    fields_shared: tuple[str, ...] = ()
    fields_withheld: tuple[str, ...] = ()
    restrictions: tuple[str, ...] = ()
    transforms: dict[str, str] = {}
    subjects: tuple[int, ...] = ()
    subject_roles: dict[str, int] = {}
    # Empty when every subject gets fields_shared and transforms; else one entry per subject.
    subject_scopes: tuple[SubjectScope, ...] = ()
    review_required: bool = False
    override_grounds: Literal["safeguarding_concern", "need_level_4"] | None = None
    grounds: tuple[ClauseRef, ...] = ()
    decided_at: datetime
    policy_version: str

    @property
    def shares(self) -> bool:
        return self.outcome != "not_shared"

    def summary(self) -> str:
        """One line for logs: ids and outcome only."""
        why = self.reason or ",".join(self.clause_ids)
        return f"{self.recipient}: {self.outcome} ({why})"
