"""The worker's validate stage: an event that fails the contact event's checks is quarantined."""

from __future__ import annotations

from collections.abc import Callable

from structlog.testing import capture_logs

from broker.audit import AuditKind
from broker.keys import FileKeyStore
from broker.pipeline._processor import Processor
from broker.topics import QUARANTINE, ingress
from tests.unit.pipeline.test_processor import CHILD_NHS, Run, incident, seal_as

BORN_AFTER = "2026-11-22"  # the day after the incident's occurred_at


def _with_child_born(dob: str) -> dict[str, object]:
    event = incident()
    event["subjects"][0]["dob"] = dob  # the child, Amy
    return event


def test_a_child_born_after_the_incident_is_quarantined_with_the_field_named_not_its_value(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    run = Run(make_processor())
    event = _with_child_born(BORN_AFTER)
    with capture_logs() as logs:
        run.feed(ingress("wmp"), *seal_as(pipeline_keys, "wmp", event, topic=ingress("wmp")))
    [quarantined] = run.audit(AuditKind.QUARANTINED)
    assert quarantined.data["reason"] == "invalid-event"
    assert quarantined.data["stage"] == "validate"
    assert quarantined.event_id == event["event_id"]
    assert run.audit(AuditKind.DECIDED) == []
    assert len(run.on(QUARANTINE)) == 1
    [invalid] = [line for line in logs if line["event"] == "event_invalid"]
    assert invalid["fields"] == ["subjects[0].dob"]
    said = repr(logs) + repr([a.model_dump() for a in run.audit()])
    assert BORN_AFTER not in said
    assert CHILD_NHS not in said


def test_a_child_born_on_the_day_of_the_incident_is_decided_not_quarantined(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    run = Run(make_processor())
    event = _with_child_born("2026-11-21")
    run.feed(ingress("wmp"), *seal_as(pipeline_keys, "wmp", event, topic=ingress("wmp")))
    assert run.audit(AuditKind.QUARANTINED) == []
    assert run.audit(AuditKind.DECIDED) != []
