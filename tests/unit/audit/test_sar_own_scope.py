"""A child's SAR says what was sent about that child when clauses covering different people
combine (``Decision.subject_scopes``): their own fields and transforms, on the decision's,
the delivery's and the opening's lines, never the decision-wide union (which can list a field
plainly that went about the child only as a pseudonym, or one shared only about another)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from broker.audit import AuditKind, AuditRecord, KeystoreAuditVerifier
from broker.governance import AuditStore, DisclosureEntry, disclosure_log
from broker.governance._sent import sent_about
from broker.keys import FileKeyStore
from broker.linkage import Linker
from broker.policy import redact
from tests.unit.audit.conftest import decision, index_records
from tests.unit.audit.test_sar_complete import _chain
from tests.unit.policy.kit import (
    AT,
    CHILD_NHS,
    ENCOMPASS,
    agreement,
    by_recipient,
    event,
    load,
    subject,
)

NAME = "subject.name"
SUBJECT = ["subject.name", "subject.dob", "subject.nhs_number"]


def _lines(
    store: AuditStore, verifier: KeystoreAuditVerifier, keys: FileKeyStore, child_key: str,
    eid: str, data: dict[str, Any], subject_keys: list[str], fields: list[str],
) -> list[DisclosureEntry]:  # fmt: skip
    common = {"event_id": eid, "party": "coord", "subject_keys": subject_keys}
    records = _chain([
        (AuditKind.DECIDED, {**common, "data": data}),
        (AuditKind.DELIVERED, {**common, "data": {"fields": fields}}),
        (AuditKind.OPENED, {**common, "data": {"by": "coord.sam", "purpose": "safeguarding",
                                               "at": "2026-11-22T23:00:00+00:00"}}),
    ], keys, "worker:w9", hours=14)  # fmt: skip
    assert index_records(store, verifier, records, start=1400).breaks == []
    return [e for e in disclosure_log(store, child_key) if e.event_id == eid]


def test_a_childs_sar_shows_their_own_scope_not_the_decision_wide_fields(
    store: AuditStore, indexed: list[AuditRecord], verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore, tmp_path: Path,
) -> None:  # fmt: skip
    parent = dict(
        copy.deepcopy(ENCOMPASS),
        id="parent",
        to=["coord"],
        subjects=["parent"],
        share=[*SUBJECT, "subject.address", "event.reference"],
        transform={"subject.name": "pseudonym", "subject.dob": "age_band"},
    )
    child = dict(
        copy.deepcopy(ENCOMPASS),
        id="child",
        to=["coord"],
        subjects=["child"],
        share=SUBJECT,
        transform={
            "subject.name": "initials",
            "subject.dob": "year_of_birth",
            "subject.nhs_number": "pseudonym",
        },
    )
    policy = load(tmp_path / "p", agreements=[agreement("a", [parent, child])])
    ev = event()
    d = by_recipient(policy.decide(ev, [], at=AT))["coord"]
    assert d.subject_scopes, "clauses about different people must give per-person scopes"
    roles = [ev.subjects[i].role for i in d.subjects]
    sent = redact(ev, d, pseudonym_key=b"k" * 32)["subjects"][roles.index("child")]
    assert {"initials", "year_of_birth", "nhs_number_pseudonym"} <= set(sent)
    assert "nhs_number" not in sent
    assert "address" not in sent
    child_key = linker.from_nhs_number(CHILD_NHS)
    subject_keys = [child_key if r == "child" else f"other-{n}" for n, r in enumerate(roles)]
    data = d.model_dump(mode="json", exclude={"event_id", "recipient"})
    lines = _lines(store, verifier, keys, child_key, str(ev.event_id), data, subject_keys,
                   list(d.fields_shared))  # fmt: skip
    assert [e.kind for e in lines] == ["decision", "delivered", "opened"]
    for line in lines:
        assert set(line.shown_fields) == {
            "name (initials only)", "date of birth (year only)", "NHS number (as a pseudonym)",
            "the sender's reference",
        }, line.kind  # fmt: skip
        assert "subject.address" not in line.fields_shared, line.kind
    # A parent's SAR from the same record shows theirs.
    [parent_line] = [e for e in disclosure_log(store, subject_keys[roles.index("parent")])
                     if e.kind == "decision"]  # fmt: skip
    assert "subject.address" in parent_line.fields_shared
    assert dict(parent_line.transforms)["subject.name"] == "pseudonym"


def test_a_decision_without_scopes_is_shown_decision_wide(
    store: AuditStore, indexed: list[AuditRecord], verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    child_key = linker.from_nhs_number(CHILD_NHS)
    fields = ["subject.name", "subject.nhs_number"]
    data = decision("shared", fields_shared=fields, transforms={"subject.name": "initials"})
    lines = _lines(store, verifier, keys, child_key, "6f1c1e3a-0000-4000-8000-00000000cc01",
                   data, [child_key], fields)  # fmt: skip
    assert [e.fields_shared for e in lines] == [tuple(fields)] * 3
    assert all(e.transforms == (("subject.name", "initials"),) for e in lines)


def test_one_person_in_two_positions_is_shown_what_went_in_full_in_either(
    store: AuditStore, indexed: list[AuditRecord], verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore, tmp_path: Path,
) -> None:  # fmt: skip
    """A 16-year-old listed as a child (reduced) and as the parent of her baby (in full): her
    NHS number went in full, so her SAR must not say it went only as a pseudonym."""
    parent = dict(copy.deepcopy(ENCOMPASS), id="parent", to=["coord"], subjects=["parent"],
                  share=[*SUBJECT, "subject.address", "event.reference"])  # fmt: skip
    child = dict(copy.deepcopy(ENCOMPASS), id="child", to=["coord"], subjects=["child"],
                 share=SUBJECT, transform={"subject.name": "initials",
                 "subject.dob": "year_of_birth", "subject.nhs_number": "pseudonym"})  # fmt: skip
    policy = load(tmp_path / "p", agreements=[agreement("a", [parent, child])])
    ev = event(subjects=[subject("child", dob="2010-03-02"),
                         subject("parent", nhs_number=CHILD_NHS, given_name="Amy",
                                 dob="2010-03-02")])  # fmt: skip
    d = by_recipient(policy.decide(ev, [], at=AT))["coord"]
    assert d.subject_scopes
    sent = redact(ev, d, pseudonym_key=b"k" * 32)["subjects"]
    assert any("nhs_number" in s and "dob" in s and "given_name" in s for s in sent)
    key = linker.from_nhs_number(CHILD_NHS)
    data = d.model_dump(mode="json", exclude={"event_id", "recipient"})
    lines = _lines(store, verifier, keys, key, str(ev.event_id), data, [key, key],
                   list(d.fields_shared))  # fmt: skip
    [line] = [e for e in lines if e.kind == "decision"]
    assert set(line.shown_fields) == {
        "name", "date of birth", "NHS number", "address", "the sender's reference",
    }  # fmt: skip


def test_a_field_sent_in_two_reduced_forms_is_not_shown_as_one_of_them() -> None:
    """Two positions, two transforms: neither alone says what went."""
    d = {"fields_shared": ["subject.name"], "transforms": {}, "subjects": [0, 1],
         "subject_scopes": [
             {"subject": 0, "fields": [NAME], "transforms": {NAME: "initials"}},
             {"subject": 1, "fields": [NAME], "transforms": {NAME: "pseudonym"}},
         ]}  # fmt: skip
    assert sent_about(d, ["K", "K"], "K") == (("subject.name",), {})
    same = copy.deepcopy(d)
    same["subject_scopes"][1]["transforms"] = {"subject.name": "initials"}
    assert sent_about(same, ["K", "K"], "K") == (("subject.name",), {"subject.name": "initials"})


def test_every_key_searched_counts_not_only_the_first() -> None:
    """A look-up by demographics searches two keys (with and without a postcode): one person
    in a decision under each is shown what went under both."""
    d = {"fields_shared": ["subject.name", "subject.address", "subject.school_urn"],
         "transforms": {}, "subjects": [0, 1, 2], "subject_scopes": [
             {"subject": 0, "fields": ["subject.name"], "transforms": {}},
             {"subject": 1, "fields": ["subject.address"], "transforms": {}},
             {"subject": 2, "fields": ["subject.school_urn"], "transforms": {}},
         ]}  # fmt: skip
    searched = ("with-postcode", "without")
    fields, _ = sent_about(d, [*searched, "someone-else"], searched)
    assert set(fields) == {"subject.name", "subject.address"}
