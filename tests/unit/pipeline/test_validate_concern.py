"""The worker refuses a safeguarding concern without a justification from a client that did
not validate it, as the SDK does: quarantined and audited, never decided as no concern."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from broker.audit import AuditKind
from broker.keys import FileKeyStore
from broker.pipeline._processor import Processor
from broker.topics import QUARANTINE, deliver, ingress
from tests.unit.pipeline.test_processor import Run, incident, seal_as


@pytest.mark.parametrize("justification", [None, "  "])
def test_a_concern_without_a_justification_is_quarantined_as_invalid_and_shared_with_no_one(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore, justification: str | None
) -> None:
    run = Run(make_processor())
    event = incident(safeguarding={"concern": True, "justification": justification})
    run.feed(ingress("wmp"), *seal_as(pipeline_keys, "wmp", event, topic=ingress("wmp")))
    [quarantined] = run.audit(AuditKind.QUARANTINED)
    assert quarantined.data["reason"] == "invalid-event"
    assert quarantined.event_id == event["event_id"]
    assert run.audit(AuditKind.DECIDED) == []
    assert len(run.on(QUARANTINE)) == 1
    assert run.on(deliver("sandwell-coord")) == []
