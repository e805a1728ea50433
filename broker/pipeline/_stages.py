"""The stage-chain machinery: a record's work item, what a stage returns, running a chain."""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Final, Protocol

import structlog

from broker.errors import ConfigError, TransportError
from broker.pipeline._effects import Effect

if TYPE_CHECKING:
    from broker.envelope import OpenedRecord
    from broker.events import AccessAck, ConsentRecord, ContactEvent
    from broker.policy import Decision

log = structlog.get_logger("accord.worker")


class Verdict(enum.Enum):
    FORWARD = "forward"
    DROP = "drop"
    QUARANTINE = "quarantine"


@dataclass(frozen=True, slots=True)
class Step:
    """What a stage says: go on (with what it produced), or stop here and why."""

    verdict: Verdict
    reason: str | None = None
    effects: tuple[Effect, ...] = ()


def forward(*effects: Effect) -> Step:
    return Step(Verdict.FORWARD, None, effects) if effects else _FORWARD


_FORWARD: Final = Step(Verdict.FORWARD)  # a Step is immutable: one will do for every stage


def quarantine(reason: str) -> Step:
    return Step(Verdict.QUARANTINE, reason)


# The one spelling (schemas/envelope.md §1): ids are compared byte for byte, and a
# capitalised twin of an id would be another id, spent apart from it.
_UUID: Final = re.compile(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}")


def is_uuid(value: str) -> bool:
    """Whether an envelope's id is a UUID in its canonical text (lowercase, hyphenated), as
    every id the SDK makes is: only such an id, never a string of the sender's choosing (it
    could spell a name), may reach the audit log."""
    return _UUID.fullmatch(value) is not None


def drop(reason: str, *effects: Effect) -> Step:
    """Stop here, on purpose: the record is refused, and ``effects`` (the record of why) stand."""
    return Step(Verdict.DROP, reason, effects)


@dataclass(slots=True)
class Work:
    """One input record travelling down a chain; stages note here what they learn.

    Only facts about this record live here; everything a stage produces for the outside
    world (records, audit, state changes) is in the ``Step`` it returns.
    """

    topic: str
    partition: int
    offset: int
    value: bytes
    headers: Sequence[tuple[str, bytes]]
    at: datetime
    key: bytes | None = None
    # The topic's partition count when the record's placement is to be checked (the worker
    # in a group); 0 when it is not (offline re-decisions, unit tests).
    partitions: int = 0
    sender: str | None = None
    opened: OpenedRecord | None = None
    # contact events
    event: ContactEvent | None = None
    subject_keys: tuple[str, ...] = ()
    lookup_keys: tuple[str, ...] = ()  # every key consent about a subject may be filed under
    subject_lookup: tuple[tuple[str, ...], ...] = ()  # those keys, subject by subject
    consents: list[ConsentRecord] = field(default_factory=list)  # what ``decide`` found
    decisions: list[Decision] = field(default_factory=list)
    # consent records
    consent: ConsentRecord | None = None
    consent_keys: tuple[str, ...] = ()
    # (reason, word) of a withdrawal's purposes and recipients the bundle does not know,
    # ignored as it is filed (broker/policy/_authority.py)
    consent_ignored: tuple[tuple[str, str], ...] = ()
    # access acknowledgements
    ack: AccessAck | None = None


class Stage(Protocol):
    """One step of a chain: inspects ``work``, notes what it learns, says what happens next."""

    name: str

    def __call__(self, work: Work) -> Step: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a chain ended for one record, and everything its forwarding stages produced.

    The stage that stopped the chain contributes nothing: a stage that quarantines a record
    has produced no half of its output (``Deliver`` seals every view before it returns).
    """

    verdict: Verdict
    reason: str | None
    stage: str
    effects: tuple[Effect, ...]


# Failures of the platform, not of the record: they end the worker for a restart, since the
# same record would meet a working platform next time. Anything else a stage raises is this
# record's doing (or a bug it triggers), and must not stop everyone's sharing.
PLATFORM_FAILURES: Final = (OSError, MemoryError, TransportError, ConfigError)


def run_chain(stages: Sequence[Stage], work: Work) -> Outcome:
    """Run ``stages`` in order until one does not forward.

    A stage that raises quarantines the record as ``stage-failed``: otherwise the failed
    transaction would leave the offset where it was, and the restarted worker would meet the
    same record and fail again, until retention dropped it. Only the exception's type is
    logged: its message may quote the record.
    """
    effects: list[Effect] = []
    for stage in stages:
        try:
            step = stage(work)
        except PLATFORM_FAILURES:
            raise
        except Exception as exc:  # noqa: BLE001  # see above: one record never stops the worker
            # Not log.exception: a traceback carries the message, which may quote the record.
            log.error("stage_failed", stage=stage.name, error=type(exc).__name__,  # noqa: TRY400
                      topic=work.topic, partition=work.partition, offset=work.offset)  # fmt: skip
            return Outcome(Verdict.QUARANTINE, "stage-failed", stage.name, tuple(effects))
        if step.verdict is Verdict.DROP:
            return Outcome(step.verdict, step.reason, stage.name, (*effects, *step.effects))
        if step.verdict is not Verdict.FORWARD:
            return Outcome(step.verdict, step.reason, stage.name, tuple(effects))
        effects += step.effects
    return Outcome(Verdict.FORWARD, None, "", tuple(effects))
