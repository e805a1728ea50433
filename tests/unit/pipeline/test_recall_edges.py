"""Withdrawal notices the worker cannot seal, and ids a sender chose: the worker goes on, and
nothing the sender named reaches the audit log."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from broker.audit import AuditKind, ChainWriter
from broker.config import KemSuite
from broker.envelope._keytypes import KeyPurpose
from broker.events import ConsentRecord, parse_consent
from broker.keys import SPECIAL_PRINCIPALS, FileKeyStore
from broker.pipeline._consent import MAX_ID, _notice_id
from broker.pipeline._metrics import Metrics
from broker.pipeline._processor import build_processor
from broker.pipeline._state import Filed, TaskId, WorkerState
from broker.policy import Policy
from broker.topics import CONSENT, SCHEMA_CONSENT, deliver, ingress
from tests.unit.pipeline.conftest import AT, ENVELOPE
from tests.unit.pipeline.test_processor import Run, _consent, incident, seal_as


@pytest.fixture
def own_keys(tmp_path: Path, project_policy: Policy) -> FileKeyStore:
    """A keystore of this test's own: it revokes a key."""
    keys = FileKeyStore(tmp_path / "keys", create=True)
    for party in project_policy.bundle.parties:
        keys.ensure_party(party, kem=KemSuite.X25519)
    for principal, purposes in SPECIAL_PRINCIPALS.items():
        keys.ensure_party(principal, purposes=purposes, kem=KemSuite.X25519)
    return keys


def _run(policy: Policy, keys: FileKeyStore) -> Run:
    return Run(build_processor(
        policy=policy, keys=keys, linkage_key=b"k" * 32, state=WorkerState(),
        chain=ChainWriter("worker:test", clock=lambda: AT), clock=lambda: AT,
        envelope=ENVELOPE, metrics=Metrics(CollectorRegistry()),
    ))  # fmt: skip


def _consent_record(keys: FileKeyStore, state: str, at: str, *, record_id: str = "") -> tuple[
    bytes, list[tuple[str, bytes]]
]:  # fmt: skip
    return seal_as(keys, "sandwell-coord", _consent(state, at), topic=CONSENT,
                   schema=SCHEMA_CONSENT, event_id=record_id or str(uuid.uuid4()))  # fmt: skip


def test_a_withdrawal_to_a_recipient_whose_key_is_revoked_is_audited_undelivered(
    project_policy: Policy, own_keys: FileKeyStore
) -> None:
    """Sealing to it would raise at every restart, for good (the withdrawal and the share
    are committed), and stop all sharing: the worker audits the notice undelivered instead."""
    run = _run(project_policy, own_keys)
    run.feed(CONSENT, *_consent_record(own_keys, "given", "2026-10-01T09:00:00Z"))
    event = incident()
    run.feed(ingress("wmp"), *seal_as(own_keys, "wmp", event, topic=ingress("wmp")))
    assert len(run.on(deliver("cog-tipton"))) == 1
    [enc] = [k for k in own_keys.keys("cog-tipton") if k.purpose is KeyPurpose.ENCRYPT]
    own_keys.revoke(enc.key_id)
    own_keys._checked_at = 0  # type: ignore[attr-defined]  # notice now, not within a second
    run.processor.services.sealer.rotate()
    run.feed(CONSENT, *_consent_record(own_keys, "withdrawn", "2026-11-01T15:30:00Z"))
    [notice] = run.audit(AuditKind.CONSENT_WITHDRAWN_NOTICE)
    assert (notice.party, notice.data["undelivered"]) == ("cog-tipton", "recipient-key-unavailable")
    assert notice.data["event_ids"] == [event["event_id"]]
    assert len(run.on(deliver("cog-tipton"))) == 1  # the share; no notice was sealed
    assert not run.processor.recall_due()  # forgotten: no retry at every transaction


def test_a_consent_record_whose_id_is_not_a_uuid_is_quarantined_and_its_id_not_audited(
    project_policy: Policy, own_keys: FileKeyStore
) -> None:
    run = _run(project_policy, own_keys)
    chosen = "Amy.Hollis.9997877896"
    run.feed(CONSENT, *_consent_record(own_keys, "given", "2026-10-01T09:00:00Z",
                                       record_id=chosen))  # fmt: skip
    assert run.audit(AuditKind.CONSENT_RECORDED) == []
    [quarantined] = run.audit(AuditKind.QUARANTINED)
    assert quarantined.data["reason"] == "invalid-consent"
    assert quarantined.event_id is None
    assert "Hollis" not in str([a.to_bytes() for a in run.audit()])


def test_an_event_whose_envelope_id_is_not_a_uuid_is_quarantined_without_that_id(
    project_policy: Policy, own_keys: FileKeyStore
) -> None:
    run = _run(project_policy, own_keys)
    sealed = seal_as(own_keys, "wmp", incident(), topic=ingress("wmp"),
                     event_id="Amy.Hollis.9997877896")  # fmt: skip
    run.feed(ingress("wmp"), *sealed)
    [quarantined] = run.audit(AuditKind.QUARANTINED)
    assert quarantined.event_id is None
    assert "Hollis" not in str([a.to_bytes() for a in run.audit()])


def test_a_notice_id_too_long_for_an_envelope_is_named_by_a_digest() -> None:
    """A record id from before ids had to be UUIDs can be up to 255 characters itself."""
    state = WorkerState(task=TaskId(ingress("some-very-long-agency-name-" * 2)[:79], 11))
    record = _consent_parsed()
    long_id = Filed("x" * 250, ("n:k",), record)
    short_id = Filed(str(uuid.uuid4()), ("n:k",), record)
    assert len(_notice_id(long_id, "cog-tipton", state)) <= MAX_ID
    assert _notice_id(long_id, "cog-tipton", state) == _notice_id(long_id, "cog-tipton", state)
    assert _notice_id(short_id, "cog-tipton", state).startswith(f"withdrawal-{short_id.record_id}")


def _consent_parsed() -> ConsentRecord:
    return parse_consent(_consent("withdrawn", "2026-11-01T15:30:00Z"), now=AT)
