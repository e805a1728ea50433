"""Each input topic's chain, run on its own without Kafka: what each stage produces, as values."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from structlog.testing import capture_logs

import broker.pipeline
from broker.audit import AuditKind
from broker.errors import PolicyError
from broker.keys import FileKeyStore
from broker.pipeline import _ingress
from broker.pipeline._access import access_chain
from broker.pipeline._consent import consent_chain, recall
from broker.pipeline._effects import (
    Audit,
    ConsentShare,
    Effect,
    FileConsent,
    MarkProcessed,
    NoteShare,
    Publish,
    SetShares,
)
from broker.pipeline._ingress import ingress_chain
from broker.pipeline._processor import Processor
from broker.pipeline._services import Services
from broker.pipeline._stages import Verdict, Work, run_chain
from broker.pipeline._state import WorkerState
from broker.topics import ACCESS, CONSENT, SCHEMA_ACCESS, SCHEMA_CONSENT, deliver, ingress
from tests.unit.pipeline.conftest import AT
from tests.unit.pipeline.test_processor import CHILD_NHS, incident, seal_as


def _work(topic: str, sealed: tuple[bytes, list[tuple[str, bytes]]]) -> Work:
    return Work(topic, 0, 7, sealed[0], sealed[1], AT)


def _audits(effects: tuple[Effect, ...], kind: AuditKind) -> list[Audit]:
    return [e for e in effects if isinstance(e, Audit) and e.kind is kind]


@pytest.fixture
def services(make_processor: Callable[..., Processor]) -> Services:
    return make_processor().services


def test_the_ingress_chain_produces_every_output_as_a_value_and_changes_nothing(
    services: Services, pipeline_keys: FileKeyStore
) -> None:
    event = incident()
    work = _work(ingress("wmp"), seal_as(pipeline_keys, "wmp", event, topic=ingress("wmp")))
    outcome = run_chain(ingress_chain(services), work)

    assert (outcome.verdict, outcome.stage) == (Verdict.FORWARD, "")
    assert [e for e in outcome.effects if isinstance(e, MarkProcessed)] == [
        MarkProcessed(event["event_id"])
    ]
    assert len(_audits(outcome.effects, AuditKind.RECEIVED)) == 1
    decided = _audits(outcome.effects, AuditKind.DECIDED)
    assert [a.party for a in decided] == [d.recipient for d in work.decisions]
    shared = sorted(d.recipient for d in work.decisions if d.shares)
    published = sorted(e.record.topic for e in outcome.effects if isinstance(e, Publish))
    assert published == [deliver(r) for r in shared]
    assert sorted(a.party or "" for a in _audits(outcome.effects, AuditKind.DELIVERED)) == shared
    # Stages read the state; only the outbox changes it.
    assert services.state.processed == set()


def test_an_event_quarantined_by_validate_spends_no_id(
    services: Services, pipeline_keys: FileKeyStore
) -> None:
    """Its sender's corrected re-send under the same id must not be refused as a replay."""
    bad = incident(need_level=9)
    work = _work(ingress("wmp"), seal_as(pipeline_keys, "wmp", bad, topic=ingress("wmp")))
    outcome = run_chain(ingress_chain(services), work)
    assert (outcome.verdict, outcome.reason, outcome.stage) == (
        Verdict.QUARANTINE, "invalid-event", "validate"
    )  # fmt: skip
    assert outcome.effects == ()


def test_a_stage_that_fails_after_link_keeps_what_link_produced_and_spends_no_id(
    services: Services, pipeline_keys: FileKeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``received`` stands (the record did arrive); the id does not go until a decision."""

    def broken(*_: Any, **__: Any) -> list[Any]:
        raise RuntimeError("policy engine bug")

    monkeypatch.setattr(_ingress.Decide, "decisions", broken)
    work = _work(ingress("wmp"), seal_as(pipeline_keys, "wmp", incident(), topic=ingress("wmp")))
    outcome = run_chain(ingress_chain(services), work)
    assert (outcome.verdict, outcome.reason, outcome.stage) == (
        Verdict.QUARANTINE, "stage-failed", "decide"
    )  # fmt: skip
    assert [type(e) for e in outcome.effects] == [Audit]
    assert _audits(outcome.effects, AuditKind.RECEIVED)


_ACK = {"event_id": str(uuid.uuid4()), "recipient": "cog-tipton", "by": "duty-worker-3",
        "purpose": "early_help", "at": "2026-11-22T07:59:00Z"}  # fmt: skip
_CONSENT = {
    "subject": {"nhs_number": CHILD_NHS}, "state": "given", "purposes": ["early_help"],
    "recipients": ["kind:hub"], "recorded_by": "sandwell-coord",
    "recorded_at": "2026-11-01T09:00:00Z",
}  # fmt: skip


@pytest.mark.parametrize(
    ("make", "sender", "topic", "schema", "payload", "ends", "spent"),
    [
        (
            consent_chain,
            "sandwell-coord",
            CONSENT,
            SCHEMA_CONSENT,
            _CONSENT,
            (Verdict.FORWARD, None),
            True,
        ),
        (
            consent_chain,
            "wmp",
            CONSENT,
            SCHEMA_CONSENT,
            {**_CONSENT, "recorded_by": "wmp"},
            (Verdict.DROP, "not-a-consent-authority"),
            True,
        ),
        (
            consent_chain,
            "sandwell-coord",
            CONSENT,
            SCHEMA_CONSENT,
            {**_CONSENT, "state": "?"},
            (Verdict.QUARANTINE, "invalid-consent"),
            False,
        ),
        (
            consent_chain,
            "cog-tipton",
            CONSENT,
            SCHEMA_CONSENT,
            _CONSENT,
            (Verdict.QUARANTINE, "sender-mismatch"),
            False,
        ),
        (access_chain, "cog-tipton", ACCESS, SCHEMA_ACCESS, _ACK, (Verdict.FORWARD, None), True),
        (
            access_chain,
            "cog-tipton",
            ACCESS,
            SCHEMA_ACCESS,
            {**_ACK, "at": "yesterday"},
            (Verdict.QUARANTINE, "invalid-ack"),
            False,
        ),
        (
            access_chain,
            "cog-tipton",
            ACCESS,
            SCHEMA_ACCESS,
            {**_ACK, "by": "9997672380"},  # an NHS number as "opened by": recorded withheld
            (Verdict.FORWARD, None),
            True,
        ),
        (
            access_chain,
            "cog-tipton",
            ACCESS,
            SCHEMA_ACCESS,
            {**_ACK, "by": "9997672380", "at": "yesterday"},  # otherwise invalid too
            (Verdict.QUARANTINE, "invalid-ack"),
            False,
        ),
        (
            access_chain,
            "cog-tipton",
            ACCESS,
            SCHEMA_ACCESS,
            {**_ACK, "purpose": "call_mum_07700900123"},  # a telephone number: withheld
            (Verdict.FORWARD, None),
            True,
        ),
    ],
)
def test_a_consent_record_or_acknowledgement_spends_its_id_only_once_settled(
    make: Callable[[Services], tuple[Any, ...]],
    sender: str,
    topic: str,
    schema: str,
    payload: dict[str, Any],
    ends: tuple[Verdict, str | None],
    spent: bool,
    services: Services,
    pipeline_keys: FileKeyStore,
) -> None:
    """Filed, refused or recorded: the id is spent; quarantined: left for a corrected re-send."""
    record_id = str(uuid.uuid4())
    sealed = seal_as(pipeline_keys, sender, payload, topic=topic, schema=schema,
                     event_id=record_id)  # fmt: skip
    outcome = run_chain(make(services), _work(topic, sealed))
    assert (outcome.verdict, outcome.reason) == ends
    marked = [e for e in outcome.effects if isinstance(e, MarkProcessed)]
    assert marked == ([MarkProcessed(record_id)] if spent else [])


def test_deliver_is_all_or_nothing(
    services: Services, pipeline_keys: FileKeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If one recipient's view cannot be redacted, no recipient's view leaves."""
    real = _ingress.redact
    calls: list[str] = []

    def second_fails(event: Any, decision: Any, **kw: Any) -> dict[str, Any]:
        calls.append(decision.recipient)
        if len(calls) == 2:
            raise PolicyError("engine bug")
        return real(event, decision, **kw)

    monkeypatch.setattr(_ingress, "redact", second_fails)
    work = _work(ingress("wmp"), seal_as(pipeline_keys, "wmp", incident(), topic=ingress("wmp")))
    outcome = run_chain(ingress_chain(services), work)
    assert (outcome.verdict, outcome.reason, outcome.stage) == (
        Verdict.QUARANTINE, "redaction-failed", "deliver"
    )  # fmt: skip
    assert len(calls) == 2
    assert not [e for e in outcome.effects if isinstance(e, Publish)]
    assert not _audits(outcome.effects, AuditKind.DELIVERED)
    assert _audits(outcome.effects, AuditKind.DECIDED)  # the decisions were made, and stand
    # ... and so is the id they were made for: a copy would repeat them.
    assert [e for e in outcome.effects if isinstance(e, MarkProcessed)] != []


def _consent(state: str, **extra: Any) -> dict[str, Any]:
    return {
        "subject": {"nhs_number": CHILD_NHS, "family_name": "Hollis", "given_name": "Amy",
                    "dob": "2019-03-02"},
        "state": state, "purposes": ["early_help"], "recipients": ["kind:hub"],
        "recorded_by": "sandwell-coord", "recorded_at": "2026-11-01T09:00:00Z", **extra,
    }  # fmt: skip


def test_the_consent_chain_files_under_every_key_and_audits(
    services: Services, pipeline_keys: FileKeyStore
) -> None:
    sealed = seal_as(pipeline_keys, "sandwell-coord", _consent("given"), topic=CONSENT,
                     schema=SCHEMA_CONSENT, event_id=str(uuid.uuid4()))  # fmt: skip
    work = _work(CONSENT, sealed)
    outcome = run_chain(consent_chain(services), work)
    assert outcome.verdict is Verdict.FORWARD
    [filed] = [e for e in outcome.effects if isinstance(e, FileConsent)]
    assert filed.subject_keys == work.consent_keys
    assert work.opened is not None
    assert filed.record_id == work.opened.event_id  # one entry per record, never rewritten
    assert [k[:2] for k in work.consent_keys] == ["n:", "d:"]  # NHS number and demographics
    [recorded] = _audits(outcome.effects, AuditKind.CONSENT_RECORDED)
    assert recorded.subject_keys == work.consent_keys
    assert len(services.state.consents) == 0  # until the outbox applies it


def _file(services: Services, pipeline_keys: FileKeyStore, consent: dict[str, Any]) -> None:
    """Run a consent record down its chain and file it, as the outbox would."""
    sealed = seal_as(pipeline_keys, "sandwell-coord", consent, topic=CONSENT,
                     schema=SCHEMA_CONSENT, event_id=str(uuid.uuid4()))  # fmt: skip
    outcome = run_chain(consent_chain(services), _work(CONSENT, sealed))
    for e in outcome.effects:
        if isinstance(e, FileConsent):
            services.state.change(e)


def test_a_withdrawal_recalls_the_shares_it_covers_with_a_notice_each(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    state = WorkerState()
    services = make_processor(state=state).services
    key = services.linker.from_nhs_number(CHILD_NHS)
    hub = ConsentShare("cog-tipton", "hub", "early_help", "e-1", "2026-10-01T09:00:00+00:00")
    other = ConsentShare("sandwell-coord", "coordinating_team", "early_help", "e-2")
    state.change(NoteShare(key, hub))
    state.change(NoteShare(key, other))
    assert recall(services, state) == []  # nothing withdrawn yet

    _file(services, pipeline_keys, _consent("withdrawn", purposes=["*"]))
    effects = recall(services, state)
    notices = [e for e in effects if isinstance(e, Publish)]
    assert [n.record.topic for n in notices] == [deliver("cog-tipton")]
    [audited] = _audits(effects, AuditKind.CONSENT_WITHDRAWN_NOTICE)
    assert (audited.party, audited.data) == (
        "cog-tipton", {"event_ids": ["e-1"], "purposes": ["early_help"]}
    )  # fmt: skip
    assert SetShares(key, (other,)) in effects  # the coordinator's share remains
    assert state.shares[key] == [hub, other]  # until the outbox applies it


def test_a_withdrawal_learnt_first_still_recalls_a_share_made_before_it_was_recorded(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    """Another worker filed the withdrawal while this one shared under the older grant:
    the recall does not depend on which a worker learns of first."""
    state = WorkerState()
    services = make_processor(state=state).services
    key = services.linker.from_nhs_number(CHILD_NHS)
    _file(services, pipeline_keys, _consent("withdrawn", purposes=["*"]))
    assert recall(services, state) == []  # nothing shared yet
    older = ConsentShare("cog-tipton", "hub", "early_help", "e-1", "2026-10-01T09:00:00+00:00")
    state.change(NoteShare(key, older))
    effects = recall(services, state)
    assert [a.party for a in _audits(effects, AuditKind.CONSENT_WITHDRAWN_NOTICE)] == ["cog-tipton"]
    assert SetShares(key, ()) in effects


def test_a_share_under_a_grant_recorded_after_the_withdrawal_is_not_recalled(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    state = WorkerState()
    services = make_processor(state=state).services
    key = services.linker.from_nhs_number(CHILD_NHS)
    _file(services, pipeline_keys, _consent("withdrawn", purposes=["*"]))  # 2026-11-01 09:00
    regranted = ConsentShare("cog-tipton", "hub", "early_help", "e-9", "2026-11-02T10:00:00+00:00")
    state.change(NoteShare(key, regranted))
    assert recall(services, state) == []
    assert state.shares[key] == [regranted]


def test_the_access_chain_audits_an_opening(
    services: Services, pipeline_keys: FileKeyStore
) -> None:
    acked = str(uuid.uuid4())
    ack = {"event_id": acked, "recipient": "cog-tipton", "by": "duty-worker-3",
           "purpose": "early_help", "at": "2026-11-22T07:59:00Z"}  # fmt: skip
    sealed = seal_as(pipeline_keys, "cog-tipton", ack, topic=ACCESS, schema=SCHEMA_ACCESS,
                     event_id=str(uuid.uuid4()))  # fmt: skip
    outcome = run_chain(access_chain(services), _work(ACCESS, sealed))
    assert outcome.verdict is Verdict.FORWARD
    [opened] = _audits(outcome.effects, AuditKind.OPENED)
    assert (opened.event_id, opened.party, opened.data) == (
        acked, "cog-tipton",
        {"by": "duty-worker-3", "purpose": "early_help", "at": "2026-11-22T07:59:00+00:00"},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("by", "purpose", "recorded"),
    [("9997672380", "early_help", {"by": "(withheld)", "by_withheld": True,
                                   "purpose": "early_help"}),
     ("duty-3", "call_mum_07700900123", {"by": "duty-3", "purpose": "(withheld)",
                                         "purpose_withheld": True}),
     # Review s43r5: a desk's "unstated" and tail's "unknown" are kept; review s43r7: any
     # other purpose no clause has (a child's name fits the pattern) is withheld.
     ("duty-3", "unstated", {"by": "duty-3", "purpose": "unstated"}),
     ("duty-3", "unknown", {"by": "duty-3", "purpose": "unknown"}),
     ("duty-3", "amy_hollis", {"by": "duty-3", "purpose": "(withheld)",
                               "purpose_withheld": True}),
     ("coord/07700-900123", "call_0121_496_0000", {"by": "(withheld)", "by_withheld": True,
                                                   "purpose": "(withheld)",
                                                   "purpose_withheld": True})],
)  # fmt: skip
def test_an_opening_whose_by_or_purpose_holds_a_number_is_recorded_with_it_withheld(
    by: str, purpose: str, recorded: dict[str, Any], services: Services,
    pipeline_keys: FileKeyStore,
) -> None:  # fmt: skip
    """The opening happened: the child's SAR must still say so, never with the number."""
    acked = str(uuid.uuid4())
    ack = {"event_id": acked, "recipient": "cog-tipton", "by": by, "purpose": purpose,
           "at": "2026-11-22T07:59:00Z"}  # fmt: skip
    sealed = seal_as(pipeline_keys, "cog-tipton", ack, topic=ACCESS, schema=SCHEMA_ACCESS,
                     event_id=str(uuid.uuid4()))  # fmt: skip
    with capture_logs() as logs:
        outcome = run_chain(access_chain(services), _work(ACCESS, sealed))
    assert outcome.verdict is Verdict.FORWARD
    [opened] = _audits(outcome.effects, AuditKind.OPENED)
    assert (opened.event_id, opened.party) == (acked, "cog-tipton")
    assert opened.data == {**recorded, "at": "2026-11-22T07:59:00+00:00"}
    withheld = [f for f in ("by", "purpose") if recorded[f] == "(withheld)"]
    assert [e.get("fields") for e in logs if e["event"] == "ack_withheld"] == (
        [withheld] if withheld else []
    )
    for number in ("900123", "7672380", "4960000"):
        assert number not in repr(logs)


@pytest.mark.parametrize(
    ("heading", "make"),
    [
        ("Contact events", ingress_chain),
        ("Consent records", consent_chain),
        ("Access acknowledgements", access_chain),
    ],
)
def test_the_package_docstring_lists_each_chain_in_order(
    heading: str, make: Callable[[Services], tuple[Any, ...]], services: Services
) -> None:
    doc = broker.pipeline.__doc__ or ""
    section = doc.split(heading, 1)[1].split("\n\n", 2)[1]
    listed = re.findall(r"^\d+\. ``(\w+)``", section, re.MULTILINE)
    assert listed == [stage.name for stage in make(services)]


def test_an_acks_purpose_is_judged_by_the_bundle_in_force_after_a_reload(
    services: Services, pipeline_keys: FileKeyStore
) -> None:
    """The purposes are worked out once per bundle, not per ack: a reload that drops one
    must withhold it from then on, on the same chain."""
    from types import SimpleNamespace

    chain = access_chain(services)

    def recorded_purpose() -> object:
        ack = {**_ACK, "event_id": str(uuid.uuid4()), "purpose": "early_help"}
        sealed = seal_as(pipeline_keys, "cog-tipton", ack, topic=ACCESS, schema=SCHEMA_ACCESS,
                         event_id=str(uuid.uuid4()))  # fmt: skip
        [opened] = _audits(run_chain(chain, _work(ACCESS, sealed)).effects, AuditKind.OPENED)
        return opened.data["purpose"]

    assert recorded_purpose() == "early_help"
    # A bundle with no agreement left (only what the access chain reads of it).
    services.policy = SimpleNamespace(version="reloaded", bundle=SimpleNamespace(agreements=[]))  # type: ignore[assignment]
    assert recorded_purpose() == "(withheld)"
