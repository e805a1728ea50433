"""The stage-chain machinery: a record's work item and the verdict each stage returns."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from broker.envelope import OpenedRecord
    from broker.events import ConsentRecord, ContactEvent
    from broker.policy import Decision


class Verdict(enum.Enum):
    FORWARD = "forward"
    DROP = "drop"
    QUARANTINE = "quarantine"


@dataclass(frozen=True, slots=True)
class Step:
    verdict: Verdict
    reason: str | None = None


FORWARD = Step(Verdict.FORWARD)


def quarantine(reason: str) -> Step:
    return Step(Verdict.QUARANTINE, reason)


def drop(reason: str) -> Step:
    return Step(Verdict.DROP, reason)


@dataclass(frozen=True, slots=True)
class OutRecord:
    """A record to produce inside the current transaction."""

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(slots=True)
class Work:
    """One input record travelling down the chain; stages fill in what they learn."""

    topic: str
    partition: int
    offset: int
    value: bytes
    headers: Sequence[tuple[str, bytes]]
    at: datetime
    sender: str | None = None
    opened: OpenedRecord | None = None
    event: ContactEvent | None = None
    subject_keys: tuple[str, ...] = ()
    consents: list[ConsentRecord] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    out: list[OutRecord] = field(default_factory=list)


class Stage(Protocol):
    """One step of the chain: inspects or enriches ``work`` and says what happens next."""

    name: str

    def __call__(self, work: Work) -> Step: ...


def run_chain(stages: Sequence[Stage], work: Work) -> tuple[Step, str]:
    """Run stages in order until one does not forward; return that step and the stage name."""
    for stage in stages:
        step = stage(work)
        if step.verdict is not Verdict.FORWARD:
            return step, stage.name
    return FORWARD, ""
