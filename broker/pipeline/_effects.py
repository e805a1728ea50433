"""What stages produce, as values: records to publish, audit entries, state changes.

Stages never write anything themselves; the ``Outbox`` applies these in order, in one place,
turning them into the records a transaction commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from broker.audit import AuditKind, PreEncoded
from broker.events import ConsentRecord


@dataclass(frozen=True, slots=True)
class OutRecord:
    """A record to produce inside the current transaction."""

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class Publish:
    """A sealed record for a recipient's (or governance's) topic."""

    record: OutRecord


@dataclass(frozen=True, slots=True)
class Audit:
    """An entry for the worker's audit chain; subject keys and identifiers only."""

    kind: AuditKind
    event_id: str | None = None
    party: str | None = None
    subject_keys: tuple[str, ...] = ()
    data: dict[str, Any] | PreEncoded | None = None


@dataclass(frozen=True, slots=True)
class ConsentShare:
    """A delivery made on the strength of consent.

    ``granted_at`` is when the newest grant it rested on was recorded: a withdrawal recorded
    at or after it recalls the share, whichever of the two a worker learns of first. ``None``
    (a share an older Accord recorded) is recalled by any withdrawal that covers it.

    ``subject`` (the person's subject key) and ``postcode`` (a keyed digest of theirs, or
    None) let a withdrawal be held to ``ConsentSubject.matches`` as the decision was: it is
    filed under a name-and-birth-date key too, which another child may share. ``None`` (a
    share an older Accord recorded) is recalled as before, on the key alone.
    """

    recipient: str
    recipient_kind: str
    purpose: str
    event_id: str
    granted_at: str | None = None
    subject: str | None = None
    postcode: str | None = None


# -- state changes ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MarkProcessed:
    """An envelope's record was settled (what became of it audited): the same id again is a
    replay. Only the settling stage returns it (``_ingress.spend``)."""

    event_id: str


@dataclass(frozen=True, slots=True)
class FileConsent:
    """A consent record to file under each of its subject keys; ``record_id`` is its
    envelope's event id."""

    record_id: str
    subject_keys: tuple[str, ...]
    record: ConsentRecord


@dataclass(frozen=True, slots=True)
class NoteShare:
    """A share that rested on consent, remembered so a withdrawal can recall it."""

    subject_key: str
    share: ConsentShare


@dataclass(frozen=True, slots=True)
class SetShares:
    """What remains of a subject's consent-based shares after a withdrawal recalled some."""

    subject_key: str
    shares: tuple[ConsentShare, ...]


@dataclass(frozen=True, slots=True)
class RetireLegacyShares:
    """An older Accord's shares for a subject were adopted by a task: clear its entry."""

    subject_key: str


@dataclass(frozen=True, slots=True)
class SetHead:
    """The audit chain's head as of the end of a transaction."""

    chain: str
    seq: int
    digest: str


@dataclass(frozen=True, slots=True)
class SetOffset:
    """The next input offset to process on a partition, committed with what it produced."""

    topic: str
    partition: int
    offset: int


StateChange = (
    MarkProcessed | FileConsent | NoteShare | SetShares | RetireLegacyShares | SetHead | SetOffset
)
Effect = Publish | Audit | StateChange
