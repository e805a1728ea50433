"""Operation Encompass notices never sent because the school had no usable key: the governance
report counts them in its Encompass section, apart from and before the late ones (they will
never be read), in text and JSON, and its look-up names the child behind each."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from broker.audit import KeystoreAuditVerifier
from broker.cli._audit_report import report_json, report_text
from broker.governance import AuditStore, Window, governance_report
from broker.keys import FileKeyStore
from broker.linkage import Linker
from tests.unit.audit.conftest import Run, decision, index_records
from tests.unit.audit.test_encompass import (
    DEADLINE,
    FRIDAY_EVENING,
    SCHOOL_A,
    SCHOOL_B,
    EncompassChain,
    _Monday,
)

NO_KEY = "recipient-key-unavailable"


def _no_key(**extra: Any) -> dict[str, Any]:
    """What the worker audits when the policy shares but the recipient has no key."""
    fields = {
        "recipient_kind": "school", "reason": NO_KEY, "agreement_id": "operation-encompass",
        "clause_ids": ["operation-encompass/encompass"], "purpose": "safeguarding",
    }  # fmt: skip
    return decision("not_shared", **{**fields, **extra})


@pytest.fixture
def unsent(keys: FileKeyStore, linker: Linker) -> EncompassChain:
    """Friday evening: three notices to a school with no key, one sent to another school, and
    refusals that are not unsent notices (a hub with no key, a school without consent, a
    school with no key for an attendance concern)."""
    c = EncompassChain(keys, linker)
    for event in ("e-nokey-1", "e-nokey-2", "e-nokey-3"):
        c.decided(event, SCHOOL_B, _no_key())
    c.decided("e-sent", SCHOOL_A, decision("shared", recipient_kind="school"))
    c.decided("e-hub", "cog-tipton", _no_key(recipient_kind="hub"))
    c.decided("e-consent", SCHOOL_A, decision("not_shared", recipient_kind="school"))
    c.decided("e-edu", SCHOOL_B, _no_key(event_type="education.attendance_concern"))
    return c


def test_notices_refused_for_want_of_the_schools_key_are_in_the_report(
    store: AuditStore, verifier: KeystoreAuditVerifier, unsent: EncompassChain
) -> None:
    index_records(store, verifier, unsent.signed())
    monday = DEADLINE + timedelta(hours=2)
    rep = governance_report(store, Window(), now=monday)
    assert [(n.school, n.event_id) for n in rep.encompass_unsent] == [
        (SCHOOL_B, "e-nokey-1"), (SCHOOL_B, "e-nokey-2"), (SCHOOL_B, "e-nokey-3"),
    ]  # fmt: skip
    assert {n.decided_at for n in rep.encompass_unsent} == {FRIDAY_EVENING}
    assert [n.event_id for n in rep.encompass_late] == ["e-sent"]  # sent, never opened
    before = Window(until=FRIDAY_EVENING)  # counted by when they were decided
    assert governance_report(store, before, now=monday).encompass_unsent == ()

    text = report_text(rep)
    section = text[text.index("Operation Encompass") :]
    assert section.splitlines()[0] == (
        "Operation Encompass: notices never sent, the school having no usable key: 3"
    )
    assert f"By school: {SCHOOL_B}: 3" in section
    assert "ACTION NEEDED" in section
    assert "notices read late or unread past their deadline: 1" in section
    assert "e-hub" not in text
    assert "e-consent" not in text
    assert "e-edu" not in text

    enc = json.loads(report_json(rep))["operation_encompass"]
    assert enc["unsent_by_school"] == {SCHOOL_B: 3}
    assert [(n["school"], n["event_id"], n["reason"]) for n in enc["unsent"]] == [
        (SCHOOL_B, f"e-nokey-{i}", NO_KEY) for i in (1, 2, 3)
    ]


def test_the_reports_look_up_names_the_child_behind_each_unsent_notice(
    store: AuditStore, verifier: KeystoreAuditVerifier, keys: FileKeyStore, linker: Linker,
    audit_db_url: str, run_cli: Run, monkeypatch: pytest.MonkeyPatch,
    lookups: list[dict[str, Any]],
) -> None:  # fmt: skip
    import broker.cli._audit

    c = EncompassChain(keys, linker)
    c.decided("e-nokey", SCHOOL_B, _no_key())
    index_records(store, verifier, c.signed())
    monkeypatch.setattr(broker.cli._audit, "datetime", _Monday)
    argv = ["audit", "report", "--db", audit_db_url, "--reason", "oversight", "--as", "ig.jo"]
    code, out, err = run_cli(argv)
    assert (code, err) == (0, "")
    assert "no usable key: 1" in out
    [lookup] = lookups
    assert lookup["subject_keys"] == (c.child,)
