"""The chain a contact event passes through, in order (see the package docstring)."""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from broker.audit import AuditKind
from broker.envelope import read_header
from broker.errors import EnvelopeError, EventInvalid, PolicyError, WrongRecipient
from broker.events import Subject, parse_event
from broker.kafka import partition_for
from broker.linkage import Linker, Unlinkable
from broker.pipeline._effects import Audit, ConsentShare, Effect, MarkProcessed, NoteShare
from broker.pipeline._encoding import DecidedData, delivery_payload
from broker.pipeline._metrics import Metrics
from broker.pipeline._services import Services
from broker.pipeline._stages import Step, Work, forward, quarantine
from broker.policy import Decision, consent_subjects, redact
from broker.topics import SCHEMA_EVENT, SCHEMA_SHARED, deliver, party_of_ingress

log = structlog.get_logger("accord.worker")


class Route:
    """The topic names the sender, which must be a party of the bundle in force.

    Any kind of party may send (a school's MIS reports attendance concerns); what it may send
    to whom is the agreements' business, decided later.
    """

    name = "route"

    def __init__(self, services: Services) -> None:
        self.services = services

    def __call__(self, work: Work) -> Step:
        party = party_of_ingress(work.topic)
        work.sender = party
        if party is None or party not in self.services.policy.bundle.parties:
            return quarantine("unknown-sender")
        return forward()


class Open:
    """Authenticate and decrypt; the envelope must come from the topic's own party.

    Every input topic's chain starts with one (``schema`` is what that topic carries). An
    id already spent (``spend``) is a replay; opening spends nothing, so a record quarantined
    at any stage leaves its id for the corrected record the sender re-sends under it.
    """

    name = "open"

    def __init__(self, services: Services, schema: str) -> None:
        self.services = services
        self.schema = schema

    def __call__(self, work: Work) -> Step:
        try:
            opened = self.services.opener.open_kafka(work.value, work.headers, topic=work.topic)
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
        if work.partitions and (misplaced := _misplaced(work, opened.event_id)):
            return quarantine(misplaced)
        return forward()


def spend(work: Work) -> MarkProcessed:
    """The record's event id marked processed: the same id again is a replay from now on.

    Returned by the stage that settles the record, with the audit record that says how
    (``decided``, ``consent_recorded`` or ``consent_refused``, ``opened``), and by no other:
    an id is spent exactly when what became of its record is in the audit log. A record
    quarantined before that (invalid, mislinked, a stage failed) spends nothing, so that its
    sender's corrected re-send under the same id is taken, not refused as a replay.
    """
    assert work.opened is not None  # noqa: S101  # Open forwarded
    return MarkProcessed(work.opened.event_id)


def _misplaced(work: Work, event_id: str) -> str | None:
    """Unless keyed by its event id, on the partition that key hashes to (as every producer
    must put it, schemas/envelope.md §9), why not.

    Replay ids are kept per input partition, by the one worker that owns it; this is what
    makes that complete: a copy of a record can only arrive where the original did. A record
    with no key is told apart from a misplaced one: its producer sets none, a bug to fix in
    the sender's code, not a copy moved to another partition.
    """
    if not work.key:
        return "unkeyed"
    key = event_id.encode("ascii")
    if work.key == key and work.partition == partition_for(key, list(range(work.partitions))):
        return None
    return "wrong-partition"


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
    """The payload must be a valid contact event from the envelope's sender, under the
    envelope's event id."""

    name = "validate"

    def __call__(self, work: Work) -> Step:
        assert work.opened is not None  # noqa: S101  # Open forwarded
        try:
            event = parse_event(work.opened.payload, now=work.at)
        except EventInvalid as exc:
            # Field paths only: EventInvalid never carries values, and neither does this line.
            log.info(
                "event_invalid",
                topic=work.topic,
                partition=work.partition,
                offset=work.offset,
                fields=[path for path, _ in exc.problems],
            )
            return quarantine("invalid-event")
        if event.sender != work.sender:
            return quarantine("sender-mismatch")
        # Both in the one spelling: the payload's is refused above unless canonical, and
        # the envelope's, which the replay guard keeps, must then be the same text.
        if str(event.event_id) != work.opened.event_id:
            return quarantine("id-mismatch")
        work.event = event
        return forward()


class Link:
    """Subject keys for every subject, the only identity audit and state ever hold, and every
    key consent about them may be filed under; ``received`` audited."""

    name = "link"

    def __init__(self, services: Services) -> None:
        self.services = services

    def __call__(self, work: Work) -> Step:
        event, opened = work.event, work.opened
        assert event is not None  # noqa: S101  # Validate forwarded
        assert opened is not None  # noqa: S101  # Open forwarded
        # lookup_keys puts the subject key first: one HMAC per key, not two.
        linker = self.services.linker
        try:
            per_subject = [linker.lookup_keys(s) for s in event.subjects]
        except Unlinkable:  # a subject named but with no NHS number and no date of birth
            per_subject = [_keys(linker, s, f"{opened.event_id}/{i}")
                           for i, s in enumerate(event.subjects)]  # fmt: skip
        work.subject_keys = tuple(keys[0] for keys in per_subject)
        work.lookup_keys = tuple(k for keys in per_subject for k in keys)
        work.subject_lookup = tuple(per_subject)
        roles: dict[str, int] = {}
        for s in event.subjects:
            roles[s.role] = roles.get(s.role, 0) + 1
        return forward(
            Audit(
                AuditKind.RECEIVED,
                event_id=opened.event_id,  # the event's own, as Validate checked
                party=event.sender,
                subject_keys=work.subject_keys,
                data={
                    "type": event.type,
                    "subject_roles": roles,
                    "topic": work.topic,
                    "partition": work.partition,
                    "offset": work.offset,
                    # The key the envelope's signature verified under (authenticated, not
                    # personal data): "which events did this key sign?" after a key is stolen.
                    "signer_key_id": opened.signer_key_id,
                },
            )
        )


class KeyUnavailable:
    """Says so when a share is refused because its recipient has no usable key: a party
    onboarded without keys in the signed directory is otherwise sent nothing, statutory
    Operation Encompass notices included, and only the audit log knows.

    Each refusal is counted (``accord_recipient_key_unavailable_total``); a warning is logged
    on a recipient's first and then at most once every ``every`` seconds, with how many were
    refused since the last, so that a busy topic does not flood the log. Party and agreement
    ids and the reason only: nothing about the event's people.
    """

    def __init__(
        self,
        metrics: Metrics | None,
        *,
        every: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._metrics = metrics
        self._every = every
        self._clock = clock
        self._warned: dict[str, float] = {}
        self._unsaid: dict[str, int] = {}  # refusals since the recipient's last warning

    def __call__(self, decision: Decision) -> None:
        recipient = decision.recipient
        if (m := self._metrics) is not None:
            m.count(m.key_unavailable, recipient)
        refused = self._unsaid.get(recipient, 0) + 1
        now = self._clock()
        last = self._warned.get(recipient)
        if last is not None and now - last < self._every:
            self._unsaid[recipient] = refused
            return
        self._warned[recipient] = now
        self._unsaid[recipient] = 0
        log.warning(
            "recipient_key_unavailable",
            recipient=recipient,
            agreement=decision.agreement_id,
            reason="recipient-key-unavailable",
            refused=refused,
            hint="put the party's keys in the signed key directory (docs/operations.md)",
        )


class Decide:
    """One decision per candidate recipient, every one audited, shares and refusals alike;
    the event's id spent."""

    name = "decide"

    def __init__(self, services: Services, no_key: KeyUnavailable | None = None) -> None:
        self.services = services
        self._key_unavailable = no_key

    def __call__(self, work: Work) -> Step:
        work.decisions = self.decisions(work)
        assert work.opened is not None  # noqa: S101  # Open forwarded
        event_id = work.opened.event_id  # the event's own, as Validate checked
        # The id is spent with the decisions: a copy of a decided event is a replay, even
        # if ``deliver`` then quarantines it (the decisions it would repeat are audited).
        return forward(spend(work), *(_decided(work, d, event_id) for d in work.decisions))

    def decisions(self, work: Work, *, check_keys: bool = True) -> list[Decision]:
        """The decisions alone, audited by nobody: ``accord policy impact`` asks for them
        under two bundles (with ``check_keys`` off: the policy's, whatever keys exist yet).

        Consent is looked up here rather than in ``link``: which consent records are filed
        depends on the bundle (``authorise``), linking does not.
        """
        assert work.event is not None  # noqa: S101  # Validate forwarded
        work.consents = self.services.state.consents_for(work.lookup_keys)
        decisions = self.services.policy.decide(work.event, work.consents, at=work.at)
        if not check_keys:
            return decisions
        can_seal = self.services.sealer.can_seal_to
        return [d if not d.shares or can_seal(d.recipient) else self._no_key(d) for d in decisions]

    def _no_key(self, decision: Decision) -> Decision:
        if self._key_unavailable is not None:
            self._key_unavailable(decision)
        return _no_key(decision)


def _no_key(decision: Decision) -> Decision:
    """A share nothing can be sealed for becomes a refusal that says why.

    Checked before anything is audited, so the log never shows a share that did not happen;
    the clauses stay, so an IG officer sees what would have applied.
    """
    withheld = tuple(sorted({*decision.fields_shared, *decision.fields_withheld}))
    return decision.model_copy(
        update={
            "outcome": "not_shared",
            "reason": "recipient-key-unavailable",
            "fields_shared": (),
            "fields_withheld": withheld,
            "transforms": {},
            "subject_scopes": (),
            "review_required": False,
            "override_grounds": None,
        }
    )


def _decided(work: Work, decision: Decision, event_id: str) -> Audit:
    keys = tuple(work.subject_keys[i] for i in decision.subjects) or work.subject_keys
    return Audit(
        AuditKind.DECIDED,
        event_id=event_id,
        party=decision.recipient,
        subject_keys=keys,
        data=DecidedData(decision),
    )


class Deliver:
    """Redact for each recipient that shares, seal to it, and produce to its own topic.

    All or nothing: if any view cannot be redacted, no view of the event leaves.
    """

    name = "deliver"

    def __init__(self, services: Services) -> None:
        self.services = services

    def __call__(self, work: Work) -> Step:
        event = work.event
        assert event is not None  # noqa: S101  # Validate forwarded
        assert work.opened is not None  # noqa: S101  # Open forwarded
        effects: list[Effect] = []
        event_id = work.opened.event_id  # the event's own, as Validate checked
        for decision in work.decisions:
            if not decision.shares:
                continue
            try:
                view = redact(event, decision, pseudonym_key=self.services.pseudonym_key)
            except PolicyError:
                return quarantine("redaction-failed")  # an engine bug must not leak or stall
            topic = deliver(decision.recipient)
            effects.append(
                self.services.sealed(
                    delivery_payload(event_id, decision, view),
                    event_id=event_id,
                    recipient=decision.recipient,
                    schema=SCHEMA_SHARED,
                    topic=topic,
                )
            )
            effects.append(
                Audit(
                    AuditKind.DELIVERED,
                    event_id=event_id,
                    party=decision.recipient,
                    subject_keys=tuple(work.subject_keys[i] for i in decision.subjects),
                    data={
                        "topic": topic,
                        "outcome": decision.outcome,
                        "fields": decision.fields_shared,
                    },
                )
            )
            effects += _consent_shares(work, decision, event_id, self.services.linker)
        return forward(*effects)


def _consent_shares(
    work: Work, decision: Decision, event_id: str, linker: Linker
) -> list[NoteShare]:
    """A share that rested on consent must be recallable if consent is withdrawn.

    Each clause is looked at, not only the first the decision names: beside a clause that
    needs no consent, another may add fields only because consent was given. A plain share
    through a clause that needs consent means consent for its purpose was given; the share
    notes when the newest grant covering it was recorded, so that only a withdrawal recorded
    since recalls it (``_consent.recall``).

    It is noted for each person whose consent it rested on (the children's, as decided, even
    when only a parent was shared), under every key consent about them may be filed by but
    the older spelling's (``Linker.legacy_key``): a withdrawal naming a child by name and
    date of birth alone must recall a share made when the event gave the NHS number.
    """
    if decision.outcome != "shared":
        return []  # an override shares without consent, nothing rests on it
    event = work.event
    assert event is not None  # noqa: S101  # Validate forwarded
    purposes = sorted({g.purpose for g in decision.grounds if g.consent != "not_required"})
    if not purposes:
        return []
    # Per person once, whatever the number of purposes: the keys to note under and the
    # postcode's digest.
    people = []
    for i in consent_subjects(event):
        subject = event.subjects[i]
        # Not under the older spelling's key, which another child may share ("Twin 1",
        # "Twin 2"): a share keeps no name for a withdrawal to tell them apart by.
        legacy = linker.legacy_key(subject)
        keys = [key for key in work.subject_lookup[i] if key != legacy]
        code = subject.postcode
        digest = None if code is None else linker.postcode_digest(code)
        people.append((i, subject, keys, digest))
    notes = []
    for purpose in purposes:
        for i, subject, keys, digest in people:
            grants = [
                r.recorded_at
                for r in work.consents
                if r.state == "given"
                and r.in_force(work.at)
                and r.covers(purpose, decision.recipient, decision.recipient_kind)
                and r.subject.matches(subject)
            ]
            share = ConsentShare(
                recipient=decision.recipient,
                recipient_kind=decision.recipient_kind,
                purpose=purpose,
                event_id=event_id,
                granted_at=max(grants).isoformat() if grants else None,
                subject=work.subject_keys[i],
                postcode=digest,
            )
            notes += [NoteShare(key, share) for key in keys]
    return notes


def ingress_chain(
    services: Services, metrics: Metrics | None = None
) -> tuple[Route, Open, Validate, Link, Decide, Deliver]:
    """The worker's chain, which says when a recipient has no key (``metrics``: counted
    there too); ``accord policy impact`` redecides without keys, and says nothing."""
    return (
        Route(services),
        Open(services, SCHEMA_EVENT),
        Validate(),
        Link(services),
        Decide(services, KeyUnavailable(metrics) if metrics is not None else None),
        Deliver(services),
    )


def _keys(linker: Linker, subject: Subject, place: str) -> tuple[str, ...]:
    try:
        return linker.lookup_keys(subject)
    except Unlinkable:
        return (linker.unlinked_key(place),)
