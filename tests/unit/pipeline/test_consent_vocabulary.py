"""A consent record naming a purpose or recipient the bundle in force does not know is
refused on arrival, loudly (audit, warning, metric), and stays refused under a later bundle
that knows the word; one filed stays in force under a later bundle that drops it. A
withdrawal naming words the bundle knows beside them is filed for those, and says which
words it ignored, as loudly."""

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
        (["early_help"], ["cog-tiptn"], "unknown-recipient", "cog-tiptn"),
    ],
)
def test_a_withdrawal_naming_nothing_the_bundle_knows_is_refused_audited_logged_and_counted(
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
                  "recipients": ["sandwell-new"]}  # fmt: skip
    _send(run, pipeline_keys, withdrawal)
    assert run.audit(AuditKind.CONSENT_REFUSED)[0].data["reason"] == "unknown-recipient"

    later = load_bundle(_bundle_with_party(tmp_path, "sandwell-new"))
    assert later.refusal_on_arrival(ConsentRecord.model_validate(withdrawal)) is None
    run.processor.policy_loaded(later, source="test")
    run.feed(ingress("wmp"), *seal_as(pipeline_keys, "wmp", incident(), topic=ingress("wmp")))
    assert _hub_outcomes(run) == ["shared"]
    assert len(run.on(deliver("cog-tipton"))) == 1


@pytest.mark.parametrize(
    ("purposes", "recipients", "filed", "ignored"),
    [
        (["early_help", "school-health"], ["kind:hub"], (["early_help"], ["kind:hub"]),
         [{"reason": "unknown-purpose", "term": "school-health"}]),
        (["*"], ["cog-tipton", "cog-tiptn"], (["*"], ["cog-tipton"]),
         [{"reason": "unknown-recipient", "term": "cog-tiptn"}]),
    ],
)  # fmt: skip
def test_a_withdrawal_with_a_misspelt_word_is_filed_for_the_rest_and_says_what_it_ignored(
    run: Run,
    pipeline_keys: FileKeyStore,
    purposes: list[str],
    recipients: list[str],
    filed: tuple[list[str], list[str]],
    ignored: list[dict[str, str]],
) -> None:
    """Refused whole, it would let the hub go on hearing about the child."""
    _send(run, pipeline_keys, _consent("given", "2026-10-01T09:00:00Z"))
    withdrawal = {**_consent("withdrawn", "2026-11-01T15:30:00Z"), "purposes": purposes,
                  "recipients": recipients}  # fmt: skip
    with capture_logs() as logs:
        _send(run, pipeline_keys, withdrawal)
    assert run.audit(AuditKind.CONSENT_REFUSED) == []
    recorded = run.audit(AuditKind.CONSENT_RECORDED)[-1]
    assert recorded.data["state"] == "withdrawn"
    assert (recorded.data["purposes"], recorded.data["recipients"]) == filed
    assert recorded.data["ignored"] == ignored
    assert recorded.data["reason"] == ignored[0]["reason"]
    assert recorded.subject_keys
    [warning] = [e for e in logs if e["event"] == "consent_terms_ignored"]
    assert warning["log_level"] == "warning"
    assert warning["ignored"] == [f"{i['reason']}: {i['term']}" for i in ignored]
    assert "9997877896" not in repr(logs)
    registry = run.processor.outbox.metrics.registry
    counted = {"reason": ignored[0]["reason"]}
    assert registry.get_sample_value("accord_consent_terms_ignored_total", counted) == 1
    assert registry.get_sample_value("accord_consent_refused_total", counted) == 0  # filed
    kept = run.processor.services.state.consents.withdrawals[-1]
    assert (list(kept.record.purposes), list(kept.record.recipients)) == filed
    run.feed(ingress("wmp"), *seal_as(pipeline_keys, "wmp", incident(), topic=ingress("wmp")))
    assert _hub_outcomes(run) == ["not_shared"]


def test_a_filed_withdrawal_with_ignored_words_has_its_reason_explained_on_its_log_line() -> None:
    """The child's log shows the code on the consent line; the legend says what was ignored
    and that the rest was withdrawn (not the refusal's 'counts for nothing')."""
    from broker.governance._reasons import FILED_CONSENT_MEANINGS, reason_legend

    class Line:
        kind = "consent"
        reason = "unknown-purpose"

    [(code, text)] = reason_legend([Line()])
    assert (code, text) == ("unknown-purpose", FILED_CONSENT_MEANINGS["unknown-purpose"])
    assert "ignored" in text
    assert "counts for nothing" not in text


@pytest.mark.parametrize("where", ["recipients", "purposes"])
def test_an_nhs_number_typed_as_a_word_is_withheld_from_the_audit_and_the_log(
    run: Run, pipeline_keys: FileKeyStore, where: str
) -> None:
    """The audit log is append-only: a child's NHS number pasted into a consent record's
    recipients or purposes is never written there, nor to the worker's log (review s44e)."""
    typed = "9434765919"
    record = {**_consent("given", "2026-10-01T09:00:00Z"), where: [typed]}
    with capture_logs() as logs:
        _send(run, pipeline_keys, record)
    [refused] = run.audit(AuditKind.CONSENT_REFUSED)
    assert refused.data["term"] == "(withheld: a number)"
    assert typed not in repr(refused.data)
    assert typed not in repr(logs)


def test_every_consent_refusal_reason_has_a_series_from_0_at_start(run: Run) -> None:
    """So a first refusal after a restart is a rise the alert's increase() sees, not a series
    that reappears at 1 (review s44e)."""
    registry = run.processor.outbox.metrics.registry
    for reason in ("not-a-consent-authority", "party-inactive", "unknown-purpose",
                   "unknown-recipient", "outside-authority"):  # fmt: skip
        assert registry.get_sample_value("accord_consent_refused_total", {"reason": reason}) == 0
    for reason in ("unknown-purpose", "unknown-recipient"):
        labels = {"reason": reason}
        assert registry.get_sample_value("accord_consent_terms_ignored_total", labels) == 0
