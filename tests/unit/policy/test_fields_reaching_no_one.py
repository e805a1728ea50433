"""A clause whose ``subjects`` match nobody in the event shares its event fields only: its
subject fields reach no one, so the decision (and with it the disclosure log, the desk's
"does not include" line and the demo's count) must not list them as shared."""

from __future__ import annotations

import copy
import uuid
from pathlib import Path
from typing import Any

from broker.policy import Policy, redact
from tests.unit.policy.kit import AT, agreement, by_recipient, event, load, subject

_BASE: dict[str, Any] = {
    "from": ["wmp"],
    "event_types": ["police.domestic_incident"],
    "to": ["coord"],
    "purpose": "safeguarding",
    "lawful_basis": {"article6": "public_task"},
    "consent": "not_required",
}
_CHILDREN = {**_BASE, "id": "children", "subjects": ["child"],
             "share": ["subject.name", "subject.dob", "subject.address", "event.summary"],
             "transform": {"subject.dob": "age_band"}}  # fmt: skip
_PARENTS = {**_BASE, "id": "parents", "subjects": ["parent"],
            "share": ["subject.name", "event.reference"]}  # fmt: skip
_REFUGE = {"id": "refuge-address", "when": "'refuge' in event.categories",
           "withhold": ["subject.address"]}  # fmt: skip
_SENSITIVE = {"id": "sensitive", "when": "event.service == 'sexual_health'", "withhold": "all"}


def _policy(root: Path, *clauses: dict[str, Any]) -> Policy:
    return load(root, agreements=[agreement("a", [copy.deepcopy(c) for c in clauses])],
                restrictions=[_REFUGE, _SENSITIVE])  # fmt: skip


def _ev(*roles: str, **over: Any) -> Any:
    return event(event_id=str(uuid.uuid4()), subjects=[subject(r) for r in roles], **over)


def test_a_clause_matching_no_subject_shares_its_event_fields_only(tmp_path: Path) -> None:
    policy = _policy(tmp_path / "b", _CHILDREN)
    ev = _ev("parent")
    d = by_recipient(policy.decide(ev, [], at=AT))["coord"]
    assert d.outcome == "shared"
    assert d.subjects == ()
    assert d.fields_shared == ("event.summary",)
    assert d.transforms == {}
    assert "subjects" not in redact(ev, d)


def test_with_a_matching_subject_the_same_clause_shares_its_subject_fields(
    tmp_path: Path,
) -> None:
    d = by_recipient(_policy(tmp_path / "b", _CHILDREN).decide(_ev("child"), [], at=AT))["coord"]
    assert set(d.fields_shared) == {"subject.name", "subject.dob", "subject.address",
                                    "event.summary"}  # fmt: skip
    assert d.transforms == {"subject.dob": "age_band"}


def test_two_clauses_only_the_one_reaching_someone_adds_subject_fields(tmp_path: Path) -> None:
    policy = _policy(tmp_path / "b", _CHILDREN, _PARENTS)
    d = by_recipient(policy.decide(_ev("parent"), [], at=AT))["coord"]
    assert set(d.clause_ids) == {"children", "parents"}
    assert set(d.fields_shared) == {"subject.name", "event.summary", "event.reference"}
    # The child clause's age band would be named for a date of birth no one's record carries.
    assert d.transforms == {}
    assert d.subject_scopes == ()


def test_a_restriction_on_a_field_that_reached_no_one_is_not_applied(tmp_path: Path) -> None:
    policy = _policy(tmp_path / "b", _CHILDREN)
    d = by_recipient(policy.decide(_ev("parent", categories=["refuge"]), [], at=AT))["coord"]
    assert d.restrictions == ()
    assert d.fields_withheld == ()
    with_child = _ev("child", categories=["refuge"])
    d = by_recipient(policy.decide(with_child, [], at=AT))["coord"]
    assert d.restrictions == ("refuge-address",)
    assert d.fields_withheld == ("subject.address",)


def test_a_kept_share_template_follows_whether_the_clause_reached_anyone(tmp_path: Path) -> None:
    """Decisions are copied from a template per recipient and clauses: the same clause with
    and without a matching subject must not share one."""
    policy = _policy(tmp_path / "b", _CHILDREN)
    for roles in (("child",), ("parent",), ("child", "parent"), ("parent",), ("child",)):
        d = by_recipient(policy.decide(_ev(*roles), [], at=AT))["coord"]
        has_subject_fields = any(f.startswith("subject.") for f in d.fields_shared)
        assert has_subject_fields == ("child" in roles), roles


def test_a_suppressed_decision_withholds_only_what_would_have_gone(tmp_path: Path) -> None:
    """A withhold-all restriction lists as withheld what the clauses would have shared in
    this event: no person's field when they match no one, and a kept refusal template is not
    reused across the two."""
    policy = _policy(tmp_path / "b", _CHILDREN)
    for roles in (("child",), ("parent",), ("child",)):
        ev = _ev(*roles, service="sexual_health")
        d = by_recipient(policy.decide(ev, [], at=AT))["coord"]
        assert (d.outcome, d.reason) == ("not_shared", "suppressed")
        expected = {"event.summary"} | (
            {"subject.name", "subject.dob", "subject.address"} if "child" in roles else set()
        )
        assert set(d.fields_withheld) == expected, roles
