"""After a keystore theft, the audit log answers "which records did the stolen key sign?":
``received`` names the key the envelope verified under (``signer_key_id``), and
``quarantined`` the key a record that did not open claims (``claimed_signer_key_id``, never
taken for authenticated), or the verified one for a record that opened."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry

from broker.audit import AuditKind, ChainWriter
from broker.audit._chain import _plain
from broker.config import KemSuite
from broker.envelope import DEK_BUNDLE_HEADER
from broker.keys import SPECIAL_PRINCIPALS, FileKeyStore
from broker.pipeline._metrics import Metrics
from broker.pipeline._processor import Processor, build_processor
from broker.pipeline._state import WorkerState
from broker.policy import Policy
from broker.topics import ingress
from tests.unit.pipeline.conftest import AT, ENVELOPE
from tests.unit.pipeline.test_processor import CHILD_NHS, Run, incident, seal_as

WMP = ingress("wmp")


def _signer(keys: FileKeyStore) -> str:
    return keys.signing_key("wmp").key_id


def test_received_names_the_key_the_envelope_verified_under_and_stays_on_the_fast_path(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    run = Run(make_processor())
    run.feed(WMP, *seal_as(pipeline_keys, "wmp", incident(), topic=WMP))
    [received] = run.audit(AuditKind.RECEIVED)
    assert received.data["signer_key_id"] == _signer(pipeline_keys)
    assert set(received.data) == {"type", "subject_roles", "topic", "partition", "offset",
                                  "signer_key_id"}  # fmt: skip
    # The worker's per-event record is still written by orjson, not rfc8785's pure Python.
    assert _plain(dict(received.data))


def test_a_record_that_opened_and_was_quarantined_names_its_verified_signer(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    run = Run(make_processor())
    run.feed(WMP, *seal_as(pipeline_keys, "wmp", incident(need_level=9), topic=WMP))
    [q] = run.audit(AuditKind.QUARANTINED)
    assert q.data["reason"] == "invalid-event"
    assert q.data["signer_key_id"] == _signer(pipeline_keys)
    assert "claimed_signer_key_id" not in q.data


def test_a_record_signed_by_a_key_the_worker_does_not_know_names_it_as_claimed(
    make_processor: Callable[..., Processor], tmp_path: Path
) -> None:
    stranger = FileKeyStore(tmp_path / "stolen", create=True)
    stranger.ensure_party("wmp", kem=KemSuite.X25519)
    stranger.ensure_party("worker", kem=KemSuite.X25519)  # a worker key it made up
    event = incident()
    run = Run(make_processor())
    run.feed(WMP, *seal_as(stranger, "wmp", event, topic=WMP))
    [q] = run.audit(AuditKind.QUARANTINED)
    assert q.data["reason"] == "key-rejected"
    assert q.data["claimed_signer_key_id"] == _signer(stranger)
    assert "signer_key_id" not in q.data  # nothing authenticated it
    assert q.event_id is None
    assert CHILD_NHS not in q.model_dump_json()


def test_a_record_signed_by_a_revoked_key_names_it_as_claimed(
    project_policy: Policy, tmp_path: Path
) -> None:
    keys = FileKeyStore(tmp_path / "keys", create=True)
    for party in project_policy.bundle.parties:
        keys.ensure_party(party, kem=KemSuite.X25519)
    for principal, purposes in SPECIAL_PRINCIPALS.items():
        keys.ensure_party(principal, purposes=purposes, kem=KemSuite.X25519)
    stolen = _signer(keys)
    record = seal_as(keys, "wmp", incident(), topic=WMP)
    keys.revoke(stolen)
    processor = build_processor(
        policy=project_policy, keys=keys, linkage_key=b"k" * 32, state=WorkerState(),
        chain=ChainWriter("worker:test", clock=lambda: AT), clock=lambda: AT,
        envelope=ENVELOPE, metrics=Metrics(CollectorRegistry()),
    )  # fmt: skip
    run = Run(processor)
    run.feed(WMP, *record)
    [q] = run.audit(AuditKind.QUARANTINED)
    assert (q.data["reason"], q.data["claimed_signer_key_id"]) == ("key-rejected", stolen)


def test_a_bad_signature_names_the_key_claimed(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    value, headers = seal_as(pipeline_keys, "wmp", incident(), topic=WMP)
    forged = [(k, v[:-1] + bytes([v[-1] ^ 1]) if k == DEK_BUNDLE_HEADER else v) for k, v in headers]
    run = Run(make_processor())
    run.feed(WMP, value, forged)
    [q] = run.audit(AuditKind.QUARANTINED)
    assert q.data["reason"] == "bad-signature"
    assert q.data["claimed_signer_key_id"] == _signer(pipeline_keys)


def test_garbage_claims_no_key(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    value, headers = seal_as(pipeline_keys, "wmp", incident(), topic=WMP)
    garbage = [(k, b"ACDK\x01garbage" if k == DEK_BUNDLE_HEADER else v) for k, v in headers]
    run = Run(make_processor())
    run.feed(WMP, value, garbage)
    run.feed(WMP, value, [])  # no bundle at all: key-rejected, nothing to read a claim from
    quarantined = run.audit(AuditKind.QUARANTINED)
    assert [(q.data["reason"], q.data["claimed_signer_key_id"]) for q in quarantined] == [
        ("malformed", None),
        ("key-rejected", None),
    ]


def test_a_record_refused_before_opening_names_no_key(
    make_processor: Callable[..., Processor],
) -> None:
    run = Run(make_processor())
    run.feed(ingress("nobody"), b"whatever", [])
    [q] = run.audit(AuditKind.QUARANTINED)
    assert q.data["reason"] == "unknown-sender"
    assert "claimed_signer_key_id" not in q.data
    assert "signer_key_id" not in q.data
