"""A share refused because its recipient has no usable key is not silent: the worker counts
it by recipient and warns (party and agreement ids, no personal data), at most once per
recipient every ten minutes, however busy the topic."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from broker.audit import ChainWriter
from broker.keys import FileKeyStore
from broker.pipeline._ingress import KeyUnavailable
from broker.pipeline._metrics import Metrics
from broker.pipeline._processor import Processor, build_processor
from broker.pipeline._state import WorkerState
from broker.policy import Decision, Policy
from broker.topics import ingress
from tests.unit.pipeline.conftest import AT, ENVELOPE
from tests.unit.pipeline.test_processor import CHILD_NHS, Run, incident, seal_as

_METRIC = "accord_recipient_key_unavailable_total"
_SCHOOL = "school-146201"


@pytest.fixture
def no_school_key(pipeline_keys: FileKeyStore, tmp_path: Path) -> FileKeyStore:
    """The pipeline's keystore with the school's encryption key revoked: none usable."""
    shutil.copytree(pipeline_keys.path, tmp_path / "keys")
    keys = FileKeyStore(tmp_path / "keys")
    keys.revoke(keys.current_encryption_key(_SCHOOL).key_id)
    return keys


def _processor(policy: Policy, keys: FileKeyStore, registry: CollectorRegistry) -> Processor:
    return build_processor(
        policy=policy, keys=keys, linkage_key=b"k" * 32, state=WorkerState(),
        chain=ChainWriter("worker:test", clock=lambda: AT), clock=lambda: AT,
        envelope=ENVELOPE, metrics=Metrics(registry),
    )  # fmt: skip


def _refused(registry: CollectorRegistry, recipient: str) -> float | None:
    return registry.get_sample_value(_METRIC, {"recipient": recipient})


def test_each_refusal_for_want_of_a_key_is_counted_and_warned_of_once(
    project_policy: Policy, no_school_key: FileKeyStore
) -> None:
    registry = CollectorRegistry()
    run = Run(_processor(project_policy, no_school_key, registry))
    with capture_logs() as logs:
        for _ in range(3):
            event = incident()
            run.feed(ingress("wmp"), *seal_as(no_school_key, "wmp", event, topic=ingress("wmp")))
    assert _refused(registry, _SCHOOL) == 3
    assert _refused(registry, "sandwell-coord") is None  # it has a key: shared
    warned = [e for e in logs if e["event"] == "recipient_key_unavailable"]
    assert len(warned) == 1  # three refusals, one line: the rest are counted
    [line] = warned
    assert line["log_level"] == "warning"
    assert (line["recipient"], line["reason"]) == (_SCHOOL, "recipient-key-unavailable")
    assert line["agreement"]  # which agreement would have shared
    assert CHILD_NHS not in repr(logs)
    assert event["event_id"] not in repr(warned)


def test_every_party_has_a_zero_series_once_a_bundle_is_in_force(
    project_policy: Policy, pipeline_keys: FileKeyStore
) -> None:
    """Else the first refusal starts its series at 1, and an alert on its increase misses it."""
    registry = CollectorRegistry()
    _processor(project_policy, pipeline_keys, registry).policy_loaded(project_policy, source="t")
    for party in project_policy.bundle.parties:
        assert _refused(registry, party) == 0


def _decision(recipient: str) -> Decision:
    return Decision(
        event_id="8c1d1a56-5e6b-4a4c-9f43-0b2f6a1d2e3f", event_type="police.domestic_incident",
        sender="wmp", recipient=recipient, recipient_kind="school", outcome="not_shared",
        reason="recipient-key-unavailable", agreement_id="operation-encompass",
        decided_at=AT, policy_version="1",
    )  # fmt: skip


def test_the_warning_comes_again_after_its_interval_with_the_refusals_since() -> None:
    now = [0.0]
    notice = KeyUnavailable(None, every=600.0, clock=lambda: now[0])
    with capture_logs() as logs:
        for at in (0.0, 10.0, 599.0, 600.0, 601.0):
            now[0] = at
            notice(_decision(_SCHOOL))
        notice(_decision("school-146202"))  # another recipient's first: warned at once
    warned = [(e["recipient"], e["refused"]) for e in logs]
    assert warned == [(_SCHOOL, 1), (_SCHOOL, 3), ("school-146202", 1)]
