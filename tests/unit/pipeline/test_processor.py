"""The worker's per-record path without Kafka: decisions, deliveries, quarantine, audit."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from broker._canonical import canonical_json
from broker.audit import AuditKind, AuditRecord, KeystoreAuditVerifier, verify_chain
from broker.envelope import Opener, Sealer
from broker.events import parse_event
from broker.keys import FileKeyStore
from broker.pipeline._effects import OutRecord
from broker.pipeline._processor import Processor
from broker.pipeline._state import STANDALONE
from broker.pipeline._view import StateView
from broker.policy import Policy, load_bundle, redact
from broker.sdk import Delivery, WithdrawalNotice
from broker.topics import (
    ACCESS,
    AUDIT,
    CONSENT,
    QUARANTINE,
    SCHEMA_ACCESS,
    SCHEMA_CONSENT,
    SCHEMA_EVENT,
    STATE,
    deliver,
    ingress,
)
from tests.unit.pipeline.conftest import AT, ENVELOPE, POLICIES

CHILD_NHS = "9997877896"


def incident(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "type": "police.domestic_incident",
        "sender": "wmp",
        "occurred_at": "2026-11-21T22:40:00Z",
        "reference": "WMP/26/112233",
        "need_level": 3,
        "child_present": True,
        "summary": "Verbal altercation between adults; child woken.",
        "child_voice": "Said she hid under the bed.",
        "categories": ["domestic_abuse"],
        "service": None,
        "location": "Family home, Tipton",
        "safeguarding": {"concern": False, "justification": None},
        "subjects": [
            {"role": "child", "nhs_number": CHILD_NHS, "given_name": "Amy",
             "family_name": "Hollis", "dob": "2019-03-02", "address": "12 Canal Street, Tipton",
             "postcode": "DY4 7AA", "school_urn": "146201"},
            {"role": "parent", "nhs_number": "9991742182", "given_name": "Dean",
             "family_name": "Hollis", "dob": "1990-05-05", "address": "12 Canal Street, Tipton",
             "postcode": "DY4 7AA"},
        ],
    }  # fmt: skip
    event.update(changes)
    return event


Sealed = tuple[bytes, list[tuple[str, bytes]]]


def seal_as(
    keys: FileKeyStore,
    party: str,
    payload: dict[str, Any],
    *,
    topic: str,
    schema: str = SCHEMA_EVENT,
    event_id: str | None = None,
) -> Sealed:
    sealer = Sealer(party, keys, ENVELOPE)
    sealed = sealer.seal(
        canonical_json(payload),
        event_id=event_id or payload.get("event_id") or str(uuid.uuid4()),
        recipient="worker",
        schema=schema,
        topic=topic,
    )
    return sealed.value, list(sealed.headers)


class Run:
    """Feeds records to a processor and sorts what comes out."""

    def __init__(self, processor: Processor) -> None:
        self.processor = processor
        self.out: list[OutRecord] = []
        self.offset = 0

    def feed(self, topic: str, value: bytes, headers: list[tuple[str, bytes]]) -> list[OutRecord]:
        self.offset += 1
        got = self.processor.handle(topic, 0, self.offset, value, headers, at=AT)
        got += self.processor.recalls()  # as the loop does when it closes each transaction
        self.out += got
        return got

    def audit(self, kind: AuditKind | None = None) -> list[AuditRecord]:
        recs = [AuditRecord.model_validate_json(r.value) for r in self.out if r.topic == AUDIT]
        return [r for r in recs if kind is None or r.kind is kind]

    def on(self, topic: str) -> list[OutRecord]:
        return [r for r in self.out if r.topic == topic]


@pytest.fixture
def run(make_processor: Callable[..., Processor]) -> Run:
    return Run(make_processor())


def test_an_incident_reaches_exactly_the_recipients_the_policy_names(
    run: Run, pipeline_keys: FileKeyStore, project_policy: Policy
) -> None:
    event = incident()
    run.feed(ingress("wmp"), *seal_as(pipeline_keys, "wmp", event, topic=ingress("wmp")))

    parsed = parse_event(event, now=AT)
    expected = project_policy.decide(parsed, [], at=AT)
    shared = {d.recipient: d for d in expected if d.shares}
    assert set(shared) == {"sandwell-coord", "school-146201"}

    for recipient, decision in shared.items():
        [record] = run.on(deliver(recipient))
        opened = Opener(recipient, pipeline_keys).open_kafka(record.value, record.headers)
        delivery = Delivery.model_validate_json(opened.payload)
        assert delivery.view == redact(parsed, decision, pseudonym_key=b"p" * 32)
        assert delivery.clauses == decision.clause_ids
    assert run.on(deliver("cog-tipton")) == []

    decided = run.audit(AuditKind.DECIDED)
    assert sorted((r.party, r.data["outcome"]) for r in decided) == sorted(
        (d.recipient, d.outcome) for d in expected
    )
    assert ("cog-tipton", "not_shared") in [(r.party, r.data["outcome"]) for r in decided]
    assert len(run.audit(AuditKind.DELIVERED)) == 2
    assert len(run.audit(AuditKind.RECEIVED)) == 1


def test_each_subject_is_audited_under_its_primary_subject_key(
    run: Run, pipeline_keys: FileKeyStore
) -> None:
    """NHS number first; a subject without one falls back to its demographics key."""
    event = incident()
    del event["subjects"][1]["nhs_number"]  # the parent is known by demographics only
    run.feed(ingress("wmp"), *seal_as(pipeline_keys, "wmp", event, topic=ingress("wmp")))
    linker = run.processor.services.linker
    expected = tuple(
        linker.subject_key(s) for s in parse_event(canonical_json(event), now=AT).subjects
    )
    assert expected[0].startswith("n:")
    assert expected[1].startswith("d:")
    [received] = run.audit(AuditKind.RECEIVED)
    assert tuple(received.subject_keys) == expected


def test_audit_records_and_state_carry_no_personal_values(
    run: Run, pipeline_keys: FileKeyStore
) -> None:
    event = incident()
    run.feed(ingress("wmp"), *seal_as(pipeline_keys, "wmp", event, topic=ingress("wmp")))
    plain = b"".join(r.value for r in run.out if r.topic in (AUDIT, STATE))
    for s in event["subjects"]:
        for field in ("nhs_number", "given_name", "family_name", "dob", "address", "postcode"):
            assert s[field].encode() not in plain, field
    assert event["summary"].encode() not in plain
    assert all(r.subject_keys for r in run.audit(AuditKind.DECIDED))


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda v, h: (b"\x00not an envelope", h), "malformed"),  # noqa: ARG005  # uniform shape
        (lambda v, h: (v[:-1] + bytes([v[-1] ^ 1]), h), "tampered"),
        (lambda v, h: (v, []), "key-rejected"),  # noqa: ARG005  # no DEK bundle header
    ],
)
def test_undecryptable_records_are_quarantined_and_audited(
    run: Run, pipeline_keys: FileKeyStore, mangle: Callable[..., Any], reason: str
) -> None:
    value, headers = seal_as(pipeline_keys, "wmp", incident(), topic=ingress("wmp"))
    value, headers = mangle(value, headers)
    run.feed(ingress("wmp"), value, headers)
    [q] = run.on(QUARANTINE)
    held = json.loads(Opener("governance", pipeline_keys).open_kafka(q.value, q.headers).payload)
    assert held["reason"] == reason
    assert [a.data["reason"] for a in run.audit(AuditKind.QUARANTINED)] == [reason]
    assert run.audit(AuditKind.DECIDED) == []


def test_a_party_cannot_publish_on_another_partys_topic(
    run: Run, pipeline_keys: FileKeyStore
) -> None:
    value, headers = seal_as(pipeline_keys, "wmp", incident(), topic=ingress("swbh"))
    run.feed(ingress("swbh"), value, headers)
    assert [a.data["reason"] for a in run.audit(AuditKind.QUARANTINED)] == ["wrong-topic"]


def test_an_unknown_sender_topic_is_quarantined(run: Run, pipeline_keys: FileKeyStore) -> None:
    run.feed(ingress("nobody"), b"whatever", [])
    assert [a.data["reason"] for a in run.audit(AuditKind.QUARANTINED)] == ["unknown-sender"]


def test_an_invalid_event_in_a_valid_envelope_is_quarantined(
    run: Run, pipeline_keys: FileKeyStore
) -> None:
    bad = incident(need_level=9)
    run.feed(ingress("wmp"), *seal_as(pipeline_keys, "wmp", bad, topic=ingress("wmp")))
    assert [a.data["reason"] for a in run.audit(AuditKind.QUARANTINED)] == ["invalid-event"]


def test_a_replayed_event_is_quarantined_and_not_delivered_twice(
    run: Run, pipeline_keys: FileKeyStore
) -> None:
    record = seal_as(pipeline_keys, "wmp", incident(), topic=ingress("wmp"))
    run.feed(ingress("wmp"), *record)
    run.feed(ingress("wmp"), *record)
    assert len(run.on(deliver("sandwell-coord"))) == 1
    assert [a.data["reason"] for a in run.audit(AuditKind.QUARANTINED)] == ["replay"]


def test_an_invalid_event_spends_no_id_so_its_corrected_resend_is_decided_once(
    run: Run, pipeline_keys: FileKeyStore
) -> None:
    """Invalid twice (audited each time), corrected, then corrected again: only the last is a
    replay, and the corrected event is decided and delivered once."""
    bad = incident(need_level=9)
    fixed = {**bad, "need_level": 3}
    invalid = seal_as(pipeline_keys, "wmp", bad, topic=ingress("wmp"))
    corrected = seal_as(pipeline_keys, "wmp", fixed, topic=ingress("wmp"))
    run.feed(ingress("wmp"), *invalid)
    run.feed(ingress("wmp"), *invalid)
    assert not [r for r in run.on(STATE) if r.key and r.key.startswith(b"p:")]  # nothing spent
    run.feed(ingress("wmp"), *corrected)
    run.feed(ingress("wmp"), *corrected)
    quarantined = run.audit(AuditKind.QUARANTINED)
    assert [a.data["reason"] for a in quarantined] == ["invalid-event", "invalid-event", "replay"]
    assert [a.event_id for a in quarantined[:2]] == [bad["event_id"]] * 2
    assert [a.event_id for a in run.audit(AuditKind.RECEIVED)] == [bad["event_id"]]
    assert len(run.on(deliver("sandwell-coord"))) == 1
    spent = [r.key for r in run.on(STATE) if r.key and r.key.startswith(b"p:")]
    assert [k.rpartition(b":")[2] for k in spent] == [bad["event_id"].encode()]


def test_an_event_from_a_clock_running_fast_is_decided_when_re_sent_once_its_time_has_come(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    """Stamped six minutes ahead it is "in the future"; the very same record sent again ten
    minutes later is valid, and must not be refused as a replay of the first."""
    processor = make_processor()
    ahead = incident(occurred_at=(AT + timedelta(minutes=6)).isoformat())
    value, headers = seal_as(pipeline_keys, "wmp", ahead, topic=ingress("wmp"))
    first = processor.handle(ingress("wmp"), 0, 1, value, headers, at=AT)
    later = processor.handle(ingress("wmp"), 0, 2, value, headers,
                             at=AT + timedelta(minutes=10))  # fmt: skip
    kinds = [AuditRecord.model_validate_json(r.value).kind for r in first if r.topic == AUDIT]
    assert AuditKind.QUARANTINED in kinds
    assert [r for r in later if r.topic == deliver("sandwell-coord")]


def test_replays_are_still_refused_after_state_is_rebuilt_from_the_changelog(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    first = Run(make_processor())
    record = seal_as(pipeline_keys, "wmp", incident(), topic=ingress("wmp"))
    first.feed(ingress("wmp"), *record)
    view = StateView()
    for r in first.on(STATE):
        if not r.key.startswith(b"k:"):  # type: ignore[union-attr]
            view.apply(r.key.decode(), r.value)  # type: ignore[union-attr]
    second = Run(make_processor(view.task_state(STANDALONE)))
    second.feed(ingress("wmp"), *record)
    assert [a.data["reason"] for a in second.audit(AuditKind.QUARANTINED)] == ["replay"]


def _consent(state: str, recorded_at: str, recipients: list[str] | None = None) -> dict[str, Any]:
    return {
        "subject": {"nhs_number": CHILD_NHS},
        "state": state,
        "purposes": ["early_help"] if state == "given" else ["*"],
        "recipients": recipients or ["kind:hub"],
        "recorded_by": "sandwell-coord",
        "recorded_at": recorded_at,
    }


def test_consent_lets_the_hub_share_and_withdrawal_stops_it_and_notifies(
    run: Run, pipeline_keys: FileKeyStore
) -> None:
    given = _consent("given", "2026-10-01T09:00:00Z")
    run.feed(CONSENT, *seal_as(pipeline_keys, "sandwell-coord", given, topic=CONSENT,
                               schema=SCHEMA_CONSENT, event_id=str(uuid.uuid4())))  # fmt: skip
    first = incident()
    run.feed(ingress("wmp"), *seal_as(pipeline_keys, "wmp", first, topic=ingress("wmp")))
    assert len(run.on(deliver("cog-tipton"))) == 1

    withdrawn = _consent("withdrawn", "2026-11-01T15:30:00Z")
    run.feed(CONSENT, *seal_as(pipeline_keys, "sandwell-coord", withdrawn, topic=CONSENT,
                               schema=SCHEMA_CONSENT, event_id=str(uuid.uuid4())))  # fmt: skip
    records = run.on(deliver("cog-tipton"))
    assert len(records) == 2
    notice = WithdrawalNotice.model_validate_json(
        Opener("cog-tipton", pipeline_keys).open_kafka(records[1].value, records[1].headers).payload
    )
    assert notice.event_ids == (first["event_id"],)
    assert len(run.audit(AuditKind.CONSENT_WITHDRAWN_NOTICE)) == 1

    later = incident()
    run.feed(ingress("wmp"), *seal_as(pipeline_keys, "wmp", later, topic=ingress("wmp")))
    assert len(run.on(deliver("cog-tipton"))) == 2  # nothing new for the hub
    hub = [a for a in run.audit(AuditKind.DECIDED) if a.party == "cog-tipton"]
    assert [a.data["outcome"] for a in hub] == ["shared", "not_shared"]
    assert hub[-1].data["reason"] == "consent-withdrawn"


def test_a_recall_is_due_once_a_withdrawal_covers_a_consent_share_and_not_after_it_is_sent(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    """What lets the loop send a withdrawal notice from a partition with no record pending."""
    processor = make_processor()

    def feed(topic: str, sender: str, payload: dict[str, Any], **how: Any) -> None:
        processor.handle(topic, 0, 1, *seal_as(pipeline_keys, sender, payload, topic=topic,
                                                **how), at=AT)  # fmt: skip

    consent = {"schema": SCHEMA_CONSENT, "event_id": None}
    feed(CONSENT, "sandwell-coord", _consent("given", "2026-10-01T09:00:00Z"), **consent)
    assert not processor.recall_due()  # a grant recalls nothing
    feed(ingress("wmp"), "wmp", incident())
    processor.recalls()  # the share's own transaction closes
    assert not processor.recall_due()

    feed(CONSENT, "sandwell-coord", _consent("withdrawn", "2026-11-01T15:30:00Z"), **consent)
    assert processor.recall_due()
    assert processor.recalls()  # the notice and its audit record
    assert not processor.recall_due()


def test_a_withdrawal_naming_the_nhs_number_and_demographics_reaches_a_child_named_without_one(
    run: Run, pipeline_keys: FileKeyStore
) -> None:
    amy = {"given_name": "Amy", "family_name": "Hollis", "dob": "2019-03-02"}
    given = dict(_consent("given", "2026-10-01T09:00:00Z"), subject=amy)
    run.feed(CONSENT, *seal_as(pipeline_keys, "sandwell-coord", given, topic=CONSENT,
                               schema=SCHEMA_CONSENT, event_id=str(uuid.uuid4())))  # fmt: skip
    child, parent = incident()["subjects"]
    no_nhs = [{k: v for k, v in child.items() if k != "nhs_number"}, parent]
    first = incident(subjects=no_nhs)
    run.feed(ingress("wmp"), *seal_as(pipeline_keys, "wmp", first, topic=ingress("wmp")))
    assert len(run.on(deliver("cog-tipton"))) == 1

    withdrawn = dict(_consent("withdrawn", "2026-11-01T15:30:00Z"),
                     subject={"nhs_number": CHILD_NHS, **amy})  # fmt: skip
    run.feed(CONSENT, *seal_as(pipeline_keys, "sandwell-coord", withdrawn, topic=CONSENT,
                               schema=SCHEMA_CONSENT, event_id=str(uuid.uuid4())))  # fmt: skip
    records = run.on(deliver("cog-tipton"))
    assert len(records) == 2  # the share, then the notice
    notice = WithdrawalNotice.model_validate_json(
        Opener("cog-tipton", pipeline_keys).open_kafka(records[1].value, records[1].headers).payload
    )
    assert notice.event_ids == (first["event_id"],)

    run.feed(ingress("wmp"), *seal_as(pipeline_keys, "wmp", incident(subjects=no_nhs),
                                      topic=ingress("wmp")))  # fmt: skip
    hub = [a for a in run.audit(AuditKind.DECIDED) if a.party == "cog-tipton"]
    assert [(a.data["outcome"], a.data["reason"]) for a in hub] == [
        ("shared", None),
        ("not_shared", "consent-withdrawn"),
    ]


def test_a_withdrawal_stamped_by_a_clock_running_ahead_is_in_force_on_receipt(
    run: Run, pipeline_keys: FileKeyStore
) -> None:
    given = _consent("given", "2026-10-01T09:00:00Z")
    run.feed(CONSENT, *seal_as(pipeline_keys, "sandwell-coord", given, topic=CONSENT,
                               schema=SCHEMA_CONSENT, event_id=str(uuid.uuid4())))  # fmt: skip
    ahead = (AT + timedelta(minutes=4)).isoformat()  # inside the accepted clock skew
    withdrawn = _consent("withdrawn", ahead)
    run.feed(CONSENT, *seal_as(pipeline_keys, "sandwell-coord", withdrawn, topic=CONSENT,
                               schema=SCHEMA_CONSENT, event_id=str(uuid.uuid4())))  # fmt: skip
    assert run.audit(AuditKind.QUARANTINED) == []
    run.feed(ingress("wmp"), *seal_as(pipeline_keys, "wmp", incident(), topic=ingress("wmp")))
    [hub] = [a for a in run.audit(AuditKind.DECIDED) if a.party == "cog-tipton"]
    assert (hub.data["outcome"], hub.data["reason"]) == ("not_shared", "consent-withdrawn")


VOICE_WITH_CONSENT = """
  - id: voice-with-consent
    from: [wmp]
    event_types: [police.domestic_incident]
    to: [sandwell-coord]
    purpose: early_help
    lawful_basis: {article6: public_task}
    consent: required
    share: [event.child_voice]
"""


def test_a_share_resting_on_one_of_several_clauses_consent_is_recalled_on_withdrawal(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore, tmp_path: Path
) -> None:
    """The coordinator gets the child's voice only under consent, beside a no-consent clause."""
    bundle = tmp_path / "policies"
    shutil.copytree(POLICIES, bundle)
    agreement = bundle / "agreements" / "sandwell-early-help.yaml"
    # After the no-consent clause, which the decision names first.
    agreement.write_text(agreement.read_text().rstrip("\n") + VOICE_WITH_CONSENT)
    run = Run(make_processor(policy=load_bundle(bundle)))
    given = _consent("given", "2026-10-01T09:00:00Z", recipients=["sandwell-coord"])
    run.feed(CONSENT, *seal_as(pipeline_keys, "sandwell-coord", given, topic=CONSENT,
                               schema=SCHEMA_CONSENT, event_id=str(uuid.uuid4())))  # fmt: skip
    first = incident()
    run.feed(ingress("wmp"), *seal_as(pipeline_keys, "wmp", first, topic=ingress("wmp")))
    [coord] = [a for a in run.audit(AuditKind.DECIDED) if a.party == "sandwell-coord"]
    assert set(coord.data["clause_ids"]) == {"police-to-coord", "voice-with-consent"}
    assert "event.child_voice" in coord.data["fields_shared"]

    withdrawn = _consent("withdrawn", "2026-11-01T15:30:00Z", recipients=["sandwell-coord"])
    run.feed(CONSENT, *seal_as(pipeline_keys, "sandwell-coord", withdrawn, topic=CONSENT,
                               schema=SCHEMA_CONSENT, event_id=str(uuid.uuid4())))  # fmt: skip
    [notice] = run.audit(AuditKind.CONSENT_WITHDRAWN_NOTICE)
    assert (notice.party, notice.data["event_ids"]) == ("sandwell-coord", [first["event_id"]])
    assert notice.data["purposes"] == ["early_help"]


def test_an_acknowledgement_without_a_time_zone_is_quarantined(
    run: Run, pipeline_keys: FileKeyStore
) -> None:
    """Its time would sit in the log beside zoned ones, and a report sorting them would fail."""
    event = incident()
    run.feed(ingress("wmp"), *seal_as(pipeline_keys, "wmp", event, topic=ingress("wmp")))
    ack = {"event_id": event["event_id"], "recipient": "sandwell-coord", "by": "duty-1",
           "purpose": "early_help", "at": "2026-11-22T09:00:00"}  # fmt: skip
    run.feed(ACCESS, *seal_as(pipeline_keys, "sandwell-coord", ack, topic=ACCESS,
                              schema=SCHEMA_ACCESS, event_id=str(uuid.uuid4())))  # fmt: skip
    assert run.audit(AuditKind.OPENED) == []
    assert [a.data["reason"] for a in run.audit(AuditKind.QUARANTINED)] == ["invalid-ack"]


@pytest.mark.parametrize(
    ("acked", "by", "purpose", "opened"),
    [(None, "coord/officer-7", "early_help", True),
     (None, "Jane Smith re Amy Hollis 02/03/2019", "early_help", False),
     (None, "coord/officer-7", "checking on Amy after the incident", False),
     ("Amy Hollis 02/03/2019 told her teacher", "coord/officer-7", "early_help", False),
     (None, "9997672380", "early_help", True),  # an NHS number, a telephone number: never
     (None, "coord/07700-900123", "early_help", True)],  # "opened by": recorded, withheld
)  # fmt: skip
def test_an_opening_is_audited_only_with_identifiers_never_free_text(
    acked: str | None, by: str, purpose: str, opened: bool, run: Run, pipeline_keys: FileKeyStore
) -> None:
    event = incident()
    run.feed(ingress("wmp"), *seal_as(pipeline_keys, "wmp", event, topic=ingress("wmp")))
    ack = {"event_id": acked or event["event_id"], "recipient": "sandwell-coord", "by": by,
           "purpose": purpose, "at": "2026-11-22T09:00:00Z"}  # fmt: skip
    run.feed(ACCESS, *seal_as(pipeline_keys, "sandwell-coord", ack, topic=ACCESS,
                              schema=SCHEMA_ACCESS, event_id=str(uuid.uuid4())))  # fmt: skip
    assert len(run.audit(AuditKind.OPENED)) == int(opened)
    quarantined = [a.data["reason"] for a in run.audit(AuditKind.QUARANTINED)]
    assert quarantined == ([] if opened else ["invalid-ack"])
    assert "Jane" not in str([a.to_bytes() for a in run.audit()])
    assert "Amy" not in str([a.to_bytes() for a in run.audit()])
    assert "9997672380" not in str([a.to_bytes() for a in run.audit()])
    assert "900123" not in str([a.to_bytes() for a in run.audit()])


def test_an_opening_recorded_with_its_by_withheld_is_counted_by_field(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    """accord_access_acks_withheld{field}: a client sending numbers as who opened is seen."""
    run = Run(make_processor())
    event = incident()
    run.feed(ingress("wmp"), *seal_as(pipeline_keys, "wmp", event, topic=ingress("wmp")))
    ack = {"event_id": event["event_id"], "recipient": "sandwell-coord", "by": "9997672380",
           "purpose": "early_help", "at": "2026-11-22T09:00:00Z"}  # fmt: skip
    run.feed(ACCESS, *seal_as(pipeline_keys, "sandwell-coord", ack, topic=ACCESS,
                              schema=SCHEMA_ACCESS, event_id=str(uuid.uuid4())))  # fmt: skip
    [opened] = run.audit(AuditKind.OPENED)
    assert opened.data["by_withheld"] is True
    registry = run.processor.outbox.metrics.registry
    withheld = registry.get_sample_value("accord_access_acks_withheld_total", {"field": "by"})
    assert withheld == 1
    assert run.audit(AuditKind.QUARANTINED) == []


def test_consent_recorded_by_someone_else_than_the_sender_is_quarantined(
    run: Run, pipeline_keys: FileKeyStore
) -> None:
    forged = _consent("given", "2026-10-01T09:00:00Z")  # recorded_by sandwell-coord, sent by wmp
    run.feed(CONSENT, *seal_as(pipeline_keys, "wmp", forged, topic=CONSENT,
                               schema=SCHEMA_CONSENT, event_id=str(uuid.uuid4())))  # fmt: skip
    assert [a.data["reason"] for a in run.audit(AuditKind.QUARANTINED)] == ["sender-mismatch"]


@pytest.mark.parametrize(
    ("recorded_by", "recipients", "reason"),
    [
        ("wmp", ["kind:hub"], "not-a-consent-authority"),  # the police may not record consent
        ("smethwick-fsp", ["kind:hub"], "party-inactive"),  # suspended
        ("hv-wolverhampton", ["*"], "outside-authority"),  # may speak for hubs and teams only
    ],
)
def test_consent_from_outside_its_authority_is_refused_audited_and_changes_nothing(
    run: Run, pipeline_keys: FileKeyStore, recorded_by: str, recipients: list[str], reason: str
) -> None:
    consent = {**_consent("given", "2026-10-01T09:00:00Z", recipients), "recorded_by": recorded_by}
    run.feed(CONSENT, *seal_as(pipeline_keys, recorded_by, consent, topic=CONSENT,
                               schema=SCHEMA_CONSENT, event_id=str(uuid.uuid4())))  # fmt: skip
    [refused] = run.audit(AuditKind.CONSENT_REFUSED)
    assert (refused.party, refused.data["reason"]) == (recorded_by, reason)
    assert refused.subject_keys  # found in the child's log
    assert run.audit(AuditKind.CONSENT_RECORDED) == []
    assert run.audit(AuditKind.QUARANTINED) == []
    assert len(run.processor.services.state.consents) == 0

    run.feed(ingress("wmp"), *seal_as(pipeline_keys, "wmp", incident(), topic=ingress("wmp")))
    hub = [r for r in run.audit(AuditKind.DECIDED) if r.party == "cog-tipton"]
    assert [(r.data["outcome"], r.data["reason"]) for r in hub] == [
        ("not_shared", "consent-missing")
    ]


def test_the_audit_chain_verifies_and_is_checkpointed(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    run = Run(make_processor(checkpoint_every=2))
    for _ in range(5):
        run.feed(ingress("wmp"), *seal_as(pipeline_keys, "wmp", incident(), topic=ingress("wmp")))
    records = run.audit()
    report = verify_chain(records, KeystoreAuditVerifier(pipeline_keys))
    assert report.records == len(records)
    assert len(run.audit(AuditKind.CHECKPOINT)) == 2


def test_a_subject_named_with_no_nhs_number_and_no_birth_date_is_linked_to_no_one(
    run: Run, pipeline_keys: FileKeyStore
) -> None:
    """A valid event (names suffice) is decided, not quarantined: the subject gets a key of
    its place in the event, so it never merges with another of the same name."""
    child, _ = incident()["subjects"]
    parent = {"role": "parent", "given_name": "Dean", "family_name": "Hollis"}
    first, second = incident(subjects=[child, parent]), incident(subjects=[child, parent])
    for event in (first, second):
        run.feed(ingress("wmp"), *seal_as(pipeline_keys, "wmp", event, topic=ingress("wmp")))
    assert run.audit(AuditKind.QUARANTINED) == []
    received = run.audit(AuditKind.RECEIVED)
    parents = [r.subject_keys[1] for r in received]
    assert all(k.startswith("u:") for k in parents)
    assert parents[0] != parents[1]  # the same name in two events: not linked
    assert received[0].subject_keys[0] == received[1].subject_keys[0]  # the child is
    assert len(run.on(deliver("sandwell-coord"))) == 2
    assert "Hollis" not in str([a.to_bytes() for a in run.audit()])
