"""The chain a consent record passes through (``accord.consent``), in order."""

from __future__ import annotations

from broker.audit import AuditKind
from broker.errors import EventInvalid
from broker.events import ConsentRecord, WithdrawalNotice, parse_consent
from broker.pipeline._effects import Audit, ConsentShare, Effect, FileConsent, SetShares
from broker.pipeline._ingress import Open
from broker.pipeline._services import Services
from broker.pipeline._stages import Step, Work, drop, forward, quarantine
from broker.topics import SCHEMA_CONSENT, SCHEMA_NOTICE, deliver


class ParseConsent:
    """The payload must be a valid consent record, recorded by the party that sent it."""

    name = "parse"

    def __call__(self, work: Work) -> Step:
        assert work.opened is not None  # noqa: S101  # Open forwarded
        try:
            record = parse_consent(work.opened.payload, now=work.at)
        except EventInvalid:
            return quarantine("invalid-consent")
        if record.recorded_by != work.opened.sender:
            return quarantine("sender-mismatch")
        if record.recorded_at > work.at:
            # Stamped by a clock running ahead (within CLOCK_SKEW): in force from receipt,
            # or a withdrawal would tell past recipients now yet let new shares through.
            record = record.model_copy(update={"recorded_at": work.at})
        work.consent = record
        return forward()


def _consent_audit(kind: AuditKind, work: Work, **extra: object) -> Audit:
    record, opened = work.consent, work.opened
    assert record is not None  # noqa: S101  # ParseConsent forwarded
    assert opened is not None  # noqa: S101  # Open forwarded
    return Audit(
        kind,
        event_id=opened.event_id,
        party=opened.sender,
        subject_keys=work.consent_keys,
        data={
            **extra,
            "state": record.state,
            "purposes": list(record.purposes),
            "recipients": list(record.recipients),
            "recorded_at": record.recorded_at.isoformat(),
            "valid_until": record.valid_until.isoformat() if record.valid_until else None,
        },
    )


class Authorise:
    """Only a consent authority of the bundle in force, active, within its authority.

    A record from anyone else is refused whole: audited as ``consent_refused`` (with the
    subject keys, so an IG officer finds the attempt in the child's log), never filed, so it
    changes no decision.
    """

    name = "authorise"

    def __init__(self, services: Services) -> None:
        self.services = services

    def __call__(self, work: Work) -> Step:
        record = work.consent
        assert record is not None  # noqa: S101  # ParseConsent forwarded
        work.consent_keys = self.services.linker.consent_keys(record.subject)
        refusal = self.services.policy.consent_refusal(record)
        if refusal is None:
            return forward()
        return drop(refusal, _consent_audit(AuditKind.CONSENT_REFUSED, work, reason=refusal))


class File:
    """File the record under every subject key it may be found by; ``consent_recorded``."""

    name = "file"

    def __call__(self, work: Work) -> Step:
        record = work.consent
        assert record is not None  # noqa: S101  # ParseConsent forwarded
        return forward(
            *(FileConsent(key, record) for key in work.consent_keys),
            _consent_audit(AuditKind.CONSENT_RECORDED, work),
        )


class NotifyWithdrawal:
    """On withdrawal, tell each past recipient under consent to stop processing what it
    received, and forget those shares."""

    name = "notify"

    def __init__(self, services: Services) -> None:
        self.services = services

    def __call__(self, work: Work) -> Step:
        record, opened = work.consent, work.opened
        assert record is not None  # noqa: S101  # ParseConsent forwarded
        assert opened is not None  # noqa: S101  # Open forwarded
        if record.state != "withdrawn":
            return forward()
        keys = work.consent_keys
        shares = self.services.state.shares

        def recalled(s: ConsentShare) -> bool:
            return _covers(record, s)

        hit = [s for key in keys for s in shares.get(key, []) if recalled(s)]
        by_recipient: dict[str, list[ConsentShare]] = {}
        for s in hit:
            by_recipient.setdefault(s.recipient, []).append(s)
        effects: list[Effect] = []
        for recipient, items in sorted(by_recipient.items()):
            notice = WithdrawalNotice(
                notice_id=f"withdrawal-{opened.event_id}-{recipient}",
                recipient=recipient,
                event_ids=tuple(sorted({s.event_id for s in items})),
                purposes=tuple(sorted({s.purpose for s in items})),
                withdrawn_at=record.recorded_at,
            )
            effects.append(
                self.services.sealed(
                    notice.model_dump(mode="json"),
                    event_id=notice.notice_id,
                    recipient=recipient,
                    schema=SCHEMA_NOTICE,
                    topic=deliver(recipient),
                )
            )
            effects.append(
                Audit(
                    AuditKind.CONSENT_WITHDRAWN_NOTICE,
                    event_id=opened.event_id,
                    party=recipient,
                    subject_keys=keys,
                    data={"event_ids": list(notice.event_ids), "purposes": list(notice.purposes)},
                )
            )
        for key in keys:
            held = shares.get(key, [])
            remaining = tuple(s for s in held if not recalled(s))
            if len(remaining) != len(held):
                effects.append(SetShares(key, remaining))
        return forward(*effects)


def _covers(record: ConsentRecord, share: ConsentShare) -> bool:
    purposes, recipients = record.purposes, record.recipients
    return ("*" in purposes or share.purpose in purposes) and (
        "*" in recipients
        or share.recipient in recipients
        or f"kind:{share.recipient_kind}" in recipients
    )


def consent_chain(
    services: Services,
) -> tuple[Open, ParseConsent, Authorise, File, NotifyWithdrawal]:
    return (
        Open(services, SCHEMA_CONSENT),
        ParseConsent(),
        Authorise(services),
        File(),
        NotifyWithdrawal(services),
    )
