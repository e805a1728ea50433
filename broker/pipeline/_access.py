"""The chain an access acknowledgement passes through (``accord.access``), in order."""

from __future__ import annotations

import structlog
from pydantic import ValidationError

from broker.audit import AuditKind
from broker.events import AccessAck
from broker.pipeline._effects import Audit
from broker.pipeline._ingress import Open, spend
from broker.pipeline._services import Services
from broker.pipeline._stages import Step, Work, forward, quarantine
from broker.policy import Policy
from broker.topics import SCHEMA_ACCESS

log = structlog.get_logger("accord.worker")


class ParseAck:
    """The payload must be a valid acknowledgement, from the recipient it names. Its purpose,
    shown in the child's SAR, is one of the bundle in force or says none is known
    (``NO_PURPOSE_STATED``); anything else (a child's name in snake_case fits the pattern) is
    recorded withheld: a closed list, not a pattern, keeps what a client typed out of the
    append-only log. A purpose an earlier bundle had is withheld too (it fails closed)."""

    name = "parse"

    def __init__(self, services: Services) -> None:
        self._services = services
        self._known: tuple[str, frozenset[str]] = ("", frozenset())  # by bundle version

    def __call__(self, work: Work) -> Step:
        assert work.opened is not None  # noqa: S101  # Open forwarded
        try:
            # A number in by or purpose is withheld, not quarantined: the opening happened,
            # and the child's SAR (and an Encompass notice's deadline) must still count it.
            ack = AccessAck.as_recorded(work.opened.payload)
        except ValidationError:
            return quarantine("invalid-ack")
        if ack.recipient != work.opened.sender:
            return quarantine("sender-mismatch")
        if ack.purpose not in self._known_purposes():
            ack = ack.model_copy(update={"purpose": AccessAck.WITHHELD})
        withheld = [f for f in ("by", "purpose") if getattr(ack, f) == AccessAck.WITHHELD]
        if withheld:
            # Which fields, never their values; the sender is a party id.
            log.warning("ack_withheld", fields=withheld, sender=ack.recipient,
                        topic=work.topic, partition=work.partition, offset=work.offset)  # fmt: skip
        work.ack = ack
        return forward()

    def _known_purposes(self) -> frozenset[str]:
        """Worked out once per bundle in force (a reload brings a new version), not per ack."""
        policy = self._services.policy
        if self._known[0] != policy.version:
            self._known = (policy.version, _purposes(policy) | NO_PURPOSE_STATED)
        return self._known[1]


class RecordOpened:
    """``opened``: who opened which record, for what purpose (identifiers only)."""

    name = "record"

    def __call__(self, work: Work) -> Step:
        ack = work.ack
        assert ack is not None  # noqa: S101  # ParseAck forwarded
        return forward(
            spend(work),
            Audit(
                AuditKind.OPENED,
                event_id=ack.event_id,
                party=ack.recipient,
                data=_opened_data(ack),
            ),
        )


def _opened_data(ack: AccessAck) -> dict[str, object]:
    """An ``opened`` record's data. A withheld value is ``AccessAck.WITHHELD``, a string as
    ``by`` and ``purpose`` always were (older readers show it as it is), and flagged
    ``by_withheld`` / ``purpose_withheld`` (true) for readers that count them."""
    data: dict[str, object] = {"by": ack.by, "purpose": ack.purpose, "at": ack.at.isoformat()}
    for name in ("by", "purpose"):
        if data[name] == AccessAck.WITHHELD:
            data[f"{name}_withheld"] = True
    return data


#: What clients send when they know no purpose: the desk for a record whose own purpose no
#: acknowledgement can carry (``broker.desk._purpose.UNSTATED``), ``accord tail`` for a
#: record that is not a delivery.
NO_PURPOSE_STATED = frozenset({"unstated", "unknown"})


def _purposes(policy: Policy) -> frozenset[str]:
    """The purposes of the bundle's clauses: what records are shared, so opened, for."""
    return frozenset(c.purpose for a in policy.bundle.agreements for c in a.clauses)


def access_chain(services: Services) -> tuple[Open, ParseAck, RecordOpened]:
    return (Open(services, SCHEMA_ACCESS), ParseAck(services), RecordOpened())
