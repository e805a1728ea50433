"""One line of a child's disclosure log (``_disclosure`` builds the log): what a table, a
page, CSV, JSON and the console show of it, and in what words.

Plain frozen dataclass, no personal values: subject keys, party ids, clause ids, field names.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from broker.governance._grounds import Ground
from broker.governance._review import ReviewStatus
from broker.governance._sent import consent_words, field_sent_as, field_words, scope_words

EntryKind = Literal[
    "received",
    "decision",
    "delivered",
    "opened",
    "consent",
    "consent_refused",
    "withdrawal_notice",
]
# A share decided, then its event quarantined at ``deliver``: without this it reads as sent.
NOT_SENT = "not sent (quarantined)"


@dataclass(frozen=True, slots=True)
class DisclosureEntry:
    """One line of a child's disclosure log: a decision about their data, its delivery, an
    access, a consent record about them (or one refused), or a withdrawal notice."""

    at: datetime
    kind: EntryKind
    event_id: str
    event_type: str | None
    sender: str | None
    recipient: str
    outcome: str | None
    reason: str | None
    purpose: str | None
    lawful_basis: str | None
    agreement_id: str | None
    clauses: tuple[str, ...]
    fields_shared: tuple[str, ...]
    fields_withheld: tuple[str, ...]
    consent: str | None
    override_grounds: str | None
    opened_by: str | None
    policy_version: str | None
    chain: str
    seq: int
    # Every agreement, purpose and lawful basis the decision rests on, the first being
    # ``agreement_id``, ``purpose`` and ``lawful_basis`` (an opening's purpose is its own).
    grounds: tuple[Ground, ...] = ()
    # How the look-up found it (``SubjectSearch.matched_on``): by a name-and-birth-date search
    # with a postcode, a record under the key without one may be another child's.
    matched_on: str | None = None
    # A safeguarding override's review, on its decision's line (None on every other line).
    review: ReviewStatus | None = None
    # When the log recorded it (an opening's ``at`` is the recipient's clock): what a SAR's
    # header compares with the last verification's time.
    logged_at: datetime | None = None
    # A consent record (``consent``, ``consent_refused``): the purposes and recipients it
    # covers and until when; a withdrawal notice: the purposes it recalls, and which shares
    # (their event ids) it told ``recipient`` to stop processing.
    purposes: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()
    valid_until: str | None = None
    recalls: tuple[str, ...] = ()
    # A consent record's own ``recorded_at`` (when the authority says it was recorded); its
    # line is at ``at``, when the broker received it: decisions before that could not see it.
    recorded_at: datetime | None = None
    not_sent: bool = False  # a share whose event was then quarantined; outcome stays as decided
    # ``lawful_basis`` in words (basis_words), for a table, a page or the console; JSON and
    # CSV keep the codes.
    shown_basis: str | None = None
    # How the decision transformed shared fields (field path, transform kind), sorted: what
    # was sent under such a field was what the transform made of it, not the original.
    transforms: tuple[tuple[str, str], ...] = ()
    # A decision's clause's consent rule (``not_required``, ``required``,
    # ``required_unless_safeguarding``; None before decisions recorded it): the first winning
    # clause's, as recorded (JSON and CSV carry it).
    consent_rule: str | None = None
    # The rule every ground shares (``decision_consent_rule``), what ``shown_consent`` words;
    # None when they differ, so the state is shown alone.
    shared_rule: str | None = None

    @property
    def shown_consent(self) -> str | None:
        """The consent state as a reader sees it: ``missing (not needed: ...)`` where the
        share needed none, ``refused (overridden: ...)`` where a safeguarding override shared
        without it; ``missing`` alone would read as sharing without consent."""
        return consent_words(self.consent, self.shared_rule, self.outcome)

    @property
    def shown_fields(self) -> tuple[str, ...]:
        """The fields shared as a reader sees them: a transformed one as what was sent,
        ``NHS number (as a pseudonym)``, any other in words (``date of birth``). JSON and CSV
        keep the paths and add ``transforms``."""
        kinds = dict(self.transforms)
        return tuple(field_sent_as(f, kinds.get(f)) for f in self.fields_shared)

    @property
    def shown_withheld(self) -> tuple[str, ...]:
        """The fields not sent to the recipient, in words (``address``); JSON and CSV keep
        the paths (``fields_withheld``)."""
        return tuple(field_words(f) for f in self.fields_withheld)

    @property
    def shown_purposes(self) -> tuple[str, ...]:
        """``purposes`` in words (``every purpose`` for ``*``); JSON and CSV keep ``*``."""
        return scope_words(self.purposes, every="purpose")

    @property
    def shown_recipients(self) -> tuple[str, ...]:
        """``recipients`` in words (``every hub``, ``every recipient``); JSON and CSV keep
        ``kind:hub`` and ``*``."""
        return scope_words(self.recipients, every="recipient")

    @property
    def shown_outcome(self) -> str | None:
        """The outcome as a reader sees it (table, HTML): ``shared, not sent (quarantined)``
        for a share never sent. JSON and CSV keep ``outcome`` as decided and say ``sent``."""
        if self.not_sent and self.outcome:
            return f"{self.outcome}, {NOT_SENT}"
        return self.outcome

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "kind": self.kind,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "sender": self.sender,
            "recipient": self.recipient,
            # As decided, one of the documented values, so a filter on it keeps its rows.
            "outcome": self.outcome,
            "reason": self.reason,
            "purpose": self.purpose,
            "lawful_basis": self.lawful_basis,
            "agreement_id": self.agreement_id,
            "clauses": list(self.clauses),
            "fields_shared": list(self.fields_shared),
            "fields_withheld": list(self.fields_withheld),
            "consent": self.consent,
            "override_grounds": self.override_grounds,
            "opened_by": self.opened_by,
            "policy_version": self.policy_version,
            "grounds": [g.as_dict() for g in self.grounds],
            "audit_ref": f"{self.chain}#{self.seq}",
            "matched_on": self.matched_on,
            "review": self.review.as_dict() if self.review else None,
            "purposes": list(self.purposes),
            "recipients": list(self.recipients),
            "valid_until": self.valid_until,
            "recalls": list(self.recalls),
            "recorded_at": self.recorded_at.isoformat() if self.recorded_at else None,
            # false on a share never sent; null elsewhere (a delivery's line says it was).
            "sent": False if self.not_sent else None,
            # field path -> transform kind, for each field shared only in a reduced form.
            "transforms": dict(self.transforms),
            "consent_rule": self.consent_rule,
        }
