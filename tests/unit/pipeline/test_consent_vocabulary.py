"""A consent record naming a purpose or recipient the bundle in force does not know is
refused on arrival, loudly (audit, warning, metric), and stays refused under a later bundle
that knows the word; one filed stays in force under a later bundle that drops it."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from broker.audit import AuditKind
from broker.events import ConsentRecord
from broker.keys import FileKeyStore
from broker.pipeline._processor import Processor
from broker.policy import load_bundle
from broker.topics import CONSENT, SCHEMA_CONSENT, deliver, ingress
from tests.unit.pipeline.conftest import POLICIES
from tests.unit.pipeline.test_processor import Run, _consent, incident, seal_as


@pytest.fixture
def run(make_processor: Callable[..., Processor]) -> Run:
    return Run(make_processor())


def _send(run: Run, keys: FileKeyStore, record: dict[str, Any]) -> None:
    run.feed(CONSENT, *seal_as(keys, record["recorded_by"], record, topic=CONSENT,
                               schema=SCHEMA_CONSENT, event_id=str(uuid.uuid4())))  # fmt: skip


def _hub_outcomes(run: Run) -> list[str]:
    return [a.data["outcome"] for a in run.audit(AuditKind.DECIDED) if a.party == "cog-tipton"]


@pytest.mark.parametrize(
    ("purposes", "recipients", "reason", "term"),
    [
        (["early-help"], ["kind:hub"], "unknown-purpose", "early-help"),
        (["early_help"], ["kind:hubs"], "unknown-recipient", "kind:hubs"),
        (["early_help"], ["cog-tipton", "cog-tiptn"], "unknown-recipient", "cog-tiptn"),
    ],
)
def test_a_misspelt_withdrawal_is_refused_audited_logged_and_counted(
    run: Run,
    pipeline_keys: FileKeyStore,
    purposes: list[str],
    recipients: list[str],
    reason: str,
    term: str,
) -> None:
    _send(run, pipeline_keys, _consent("given", "2026-10-01T09:00:00Z"))
    withdrawal = {**_consent("withdrawn", "2026-11-01T15:30:00Z"), "purposes": purposes,
                  "recipients": recipients}  # fmt: skip
    with capture_logs() as logs:
        _send(run, pipeline_keys, withdrawal)
    [refused] = run.audit(AuditKind.CONSENT_REFUSED)
    assert (refused.data["reason"], refused.data["term"]) == (reason, term)
    assert refused.data["state"] == "withdrawn"
    assert refused.subject_keys  # in the child's disclosure log
    [warning] = [e for e in logs if e["event"] == "consent_refused"]
    assert warning["log_level"] == "warning"
    assert (warning["reason"], warning["term"], warning["recorded_by"]) == (
        reason, term, "sandwell-coord"
    )  # fmt: skip
    assert "9997877896" not in repr(logs)  # the child's NHS number is never logged
    registry = run.processor.outbox.metrics.registry
    assert registry.get_sample_value("accord_consent_refused_total", {"reason": reason}) == 1
    assert len(run.processor.services.state.consents) == 1  # the grant alone is filed
    # Not filed, so it stops nothing (the hub still receives); but now everyone can see why.
    run.feed(ingress("wmp"), *seal_as(pipeline_keys, "wmp", incident(), topic=ingress("wmp")))
    assert _hub_outcomes(run) == ["shared"]


def test_a_refusal_for_authority_is_counted_by_its_reason_too(
    run: Run, pipeline_keys: FileKeyStore
) -> None:
    _send(run, pipeline_keys, {**_consent("given", "2026-10-01T09:00:00Z"), "recorded_by": "wmp"})
    registry = run.processor.outbox.metrics.registry
    counted = {"reason": "not-a-consent-authority"}
    assert registry.get_sample_value("accord_consent_refused_total", counted) == 1
    assert "term" not in run.audit(AuditKind.CONSENT_REFUSED)[0].data


def _bundle_with_party(tmp_path: Path, party: str) -> Path:
    bundle = tmp_path / "policies"
    shutil.copytree(POLICIES, bundle)
    with (bundle / "parties.yaml").open("a") as parties:
        parties.write(f"  {party}:\n    name: A party added later\n    kind: agency\n")
    return bundle


def test_a_bundle_that_later_knows_the_word_does_not_revive_the_refused_withdrawal(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore, tmp_path: Path
) -> None:
    """It was refused under the bundle in force, and never filed: it must be sent again."""
    run = Run(make_processor())
    _send(run, pipeline_keys, _consent("given", "2026-10-01T09:00:00Z"))
    withdrawal = {**_consent("withdrawn", "2026-11-01T15:30:00Z"),
                  "recipients": ["cog-tipton", "sandwell-new"]}  # fmt: skip
    _send(run, pipeline_keys, withdrawal)
    assert run.audit(AuditKind.CONSENT_REFUSED)[0].data["reason"] == "unknown-recipient"

    later = load_bundle(_bundle_with_party(tmp_path, "sandwell-new"))
    assert later.refusal_on_arrival(ConsentRecord.model_validate(withdrawal)) is None
    run.processor.policy_loaded(later, source="test")
    run.feed(ingress("wmp"), *seal_as(pipeline_keys, "wmp", incident(), topic=ingress("wmp")))
    assert _hub_outcomes(run) == ["shared"]
    assert len(run.on(deliver("cog-tipton"))) == 1
