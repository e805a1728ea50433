"""The stages a contact event passes through, in order (see the package docstring)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.envelope import read_header
from broker.errors import EnvelopeError, EventInvalid, PolicyError, WrongRecipient
from broker.events import parse_event
from broker.pipeline._stages import FORWARD, OutRecord, Step, Work, quarantine
from broker.policy import redact
from broker.sdk import Delivery
from broker.topics import SCHEMA_EVENT, SCHEMA_SHARED, deliver, party_of_ingress

if TYPE_CHECKING:
    from broker.pipeline._context import Context


class Route:
    """The topic names the sender, which must be a party of the bundle in force.

    Any kind of party may send (a school's MIS reports attendance concerns); what it may send
    to whom is the agreements' business, decided later.
    """

    name = "route"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def __call__(self, work: Work) -> Step:
        party = party_of_ingress(work.topic)
        work.sender = party
        if party is None or party not in self.ctx.policy.bundle.parties:
            return quarantine("unknown-sender")
        return FORWARD


class Open:
    """Authenticate and decrypt; the envelope must come from the topic's own party."""

    name = "open"

    def __init__(self, ctx: Context, schema: str) -> None:
        self.ctx = ctx
        self.schema = schema

    def __call__(self, work: Work) -> Step:
        try:
            opened = self.ctx.opener.open_kafka(work.value, work.headers, topic=work.topic)
        except WrongRecipient:
            return quarantine(_misaddressed(work))
        except EnvelopeError as exc:
            return quarantine(exc.reason)
        work.opened = opened
        if work.sender is None:
            work.sender = opened.sender
        if opened.sender != work.sender:
            return quarantine("wrong-topic")  # a party may publish only to its own topic
        if opened.schema != self.schema:
            return quarantine("wrong-schema")
        return FORWARD


def _misaddressed(work: Work) -> str:
    """Name the way a record was misaddressed, for the IG officer reading the quarantine.

    The header is read unauthenticated, only to choose between two reason codes; the record
    is quarantined either way.
    """
    try:
        header = read_header(work.value)
    except EnvelopeError:
        return "wrong-recipient"
    return "wrong-topic" if header.topic != work.topic else "wrong-recipient"


class Validate:
    """The payload must be a valid contact event from the envelope's sender."""

    name = "validate"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def __call__(self, work: Work) -> Step:
        assert work.opened is not None  # noqa: S101  # Open forwarded
        try:
            event = parse_event(work.opened.payload, now=work.at)
        except EventInvalid as exc:
            self.ctx.note_invalid(work, exc)
            return quarantine("invalid-event")
        if event.sender != work.sender or str(event.event_id) != work.opened.event_id:
            return quarantine("sender-mismatch")
        work.event = event
        return FORWARD


class Link:
    """Subject keys for every subject: the only identity audit and state ever hold."""

    name = "link"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def __call__(self, work: Work) -> Step:
        assert work.event is not None  # noqa: S101  # Validate forwarded
        # lookup_keys puts the subject key first: one HMAC per key, not two.
        per_subject = [self.ctx.linker.lookup_keys(s) for s in work.event.subjects]
        work.subject_keys = tuple(keys[0] for keys in per_subject)
        lookup = tuple(k for keys in per_subject for k in keys)
        work.consents = self.ctx.state.consents_for(lookup)
        self.ctx.audit_received(work)
        return FORWARD


class Decide:
    """One decision per candidate recipient, every one audited, shares and refusals alike."""

    name = "decide"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def __call__(self, work: Work) -> Step:
        assert work.event is not None  # noqa: S101  # Validate forwarded
        work.decisions = self.ctx.policy.decide(work.event, work.consents, at=work.at)
        for decision in work.decisions:
            self.ctx.audit_decided(work, decision)
        return FORWARD


class Deliver:
    """Redact for each recipient that shares, seal to it, and produce to its own topic."""

    name = "deliver"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def __call__(self, work: Work) -> Step:
        event = work.event
        assert event is not None  # noqa: S101  # Validate forwarded
        for decision in work.decisions:
            if not decision.shares:
                continue
            try:
                view = redact(event, decision, pseudonym_key=self.ctx.pseudonym_key)
            except PolicyError:
                return quarantine("redaction-failed")  # an engine bug must not leak or stall
            message = Delivery(
                event_id=str(event.event_id),
                recipient=decision.recipient,
                outcome="shared_override" if decision.outcome == "shared_override" else "shared",
                clauses=decision.clause_ids,
                agreements=tuple(sorted({g.agreement_id for g in decision.grounds})),
                purpose=decision.purpose or "",
                lawful_basis=(
                    decision.lawful_basis.model_dump(exclude_none=True)
                    if decision.lawful_basis
                    else {}
                ),
                policy_version=decision.policy_version,
                decided_at=decision.decided_at,
                view=view,
            )
            topic = deliver(decision.recipient)
            sealed = self.ctx.seal(
                message.model_dump(mode="json"),
                message.event_id,
                decision.recipient,
                SCHEMA_SHARED,
                topic,
            )
            work.out.append(
                OutRecord(topic, message.event_id.encode(), sealed.value, tuple(sealed.headers))
            )
            self.ctx.audit_delivered(work, decision, topic)
            self.ctx.remember_consent_share(work, decision)
        return FORWARD


def ingress_chain(ctx: Context) -> tuple[Route | Open | Validate | Link | Decide | Deliver, ...]:
    return (
        Route(ctx),
        Open(ctx, SCHEMA_EVENT),
        Validate(ctx),
        Link(ctx),
        Decide(ctx),
        Deliver(ctx),
    )
