"""The worker decides a safeguarding concern sent without a readable justification as the
brief says (a valid event; the concern overrides no consent), never quarantines it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from broker.audit import AuditKind
from broker.keys import FileKeyStore
from broker.pipeline._processor import Processor
from broker.topics import ingress
from tests.unit.pipeline.test_processor import Run, incident, seal_as


@pytest.mark.parametrize("justification", [None, "  ", "\u200b"])
def test_a_concern_without_a_readable_justification_is_decided_with_no_concern_override(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore, justification: str | None
) -> None:
    run = Run(make_processor())
    event = incident(safeguarding={"concern": True, "justification": justification})
    run.feed(ingress("wmp"), *seal_as(pipeline_keys, "wmp", event, topic=ingress("wmp")))
    assert run.audit(AuditKind.QUARANTINED) == []
    decided = run.audit(AuditKind.DECIDED)
    assert decided
    assert all(d.data["override_grounds"] is None for d in decided)
