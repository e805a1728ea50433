"""A safeguarding override records the basis it rests on, not the consent it went against
(docs/policy-language.md §3, lawful bases; §6 step 5)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from broker.errors import BundleInvalid
from broker.policy import Policy, redact
from tests.unit.policy.kit import (
    AT,
    CHILD2_NHS,
    CHILD_NHS,
    POLICE_TO_COORD,
    agreement,
    by_recipient,
    consent,
    default_agreements,
    event,
    load,
    subject,
)

PARA_18 = "safeguarding_children"


def _police_clause(**over: Any) -> dict[str, Any]:
    """Police to the co-ordinating team on the family's consent, unless safeguarding."""
    clause: dict[str, Any] = copy.deepcopy(POLICE_TO_COORD)
    clause.update(
        lawful_basis={"article6": "public_task", "article10": "explicit_consent"},
        consent="required_unless_safeguarding",
        purpose="early_help",
    )
    clause.pop("when")
    clause.update(over)
    return clause


def _policy(root: Path, clause: dict[str, Any]) -> Policy:
    return load(root, agreements=[agreement("early-help", [clause])])


def _refused(nhs: str) -> Any:
    return consent(nhs, "refused", recipients=["*"], purposes=["*"])


def test_an_override_against_refusals_records_para_18_for_offence_data(tmp_path: Path) -> None:
    """Both children refused; need level 4: article10 is para 18 (via para 36), not consent."""
    policy = _policy(tmp_path, _police_clause())
    ev = event(
        need_level=4,
        subjects=[subject("child"), subject("child", nhs_number=CHILD2_NHS), subject("parent")],
    )
    d = by_recipient(policy.decide(ev, [_refused(CHILD_NHS), _refused(CHILD2_NHS)], at=AT))["coord"]
    assert (d.outcome, d.consent, d.override_grounds) == (
        "shared_override",
        "refused",
        "need_level_4",
    )
    assert d.lawful_basis is not None
    assert d.lawful_basis.model_dump() == {
        "article6": "public_task",
        "article9": PARA_18,
        "article10": PARA_18,
    }
    assert [g.lawful_basis.article10 for g in d.grounds] == [PARA_18]
    assert redact(ev, d)["sharing"]["lawful_basis"]["article10"] == PARA_18


def test_a_share_with_consent_keeps_the_clauses_own_conditions(tmp_path: Path) -> None:
    policy = _policy(tmp_path, _police_clause())
    given = consent(CHILD_NHS, "given", recipients=["*"], purposes=["*"])
    d = by_recipient(policy.decide(event(need_level=4), [given], at=AT))["coord"]
    assert d.outcome == "shared"
    assert d.lawful_basis is not None
    assert (d.lawful_basis.article9, d.lawful_basis.article10) == (None, "explicit_consent")


def test_an_override_adds_no_article10_the_clause_does_not_name(tmp_path: Path) -> None:
    """Article 10 is for offence data: a health clause's override names Art 9 only."""
    policy = load(tmp_path / "bundle", agreements=default_agreements())
    ev = event(
        type="health.ae_attendance",
        sender="swbh",
        safeguarding={"concern": True, "justification": "Asking would put the child at risk."},
    )
    d = by_recipient(policy.decide(ev, [], at=AT))["coord"]
    assert d.outcome == "shared_override"
    assert d.lawful_basis is not None
    assert (d.lawful_basis.article9, d.lawful_basis.article10) == (PARA_18, None)


def test_check_refuses_article6_consent_with_required_unless_safeguarding(tmp_path: Path) -> None:
    clause = _police_clause(lawful_basis={"article6": "consent", "article10": "explicit_consent"})
    with pytest.raises(BundleInvalid) as caught:
        _policy(tmp_path, clause)
    [problem] = caught.value.problems
    assert problem.startswith("agreements/early-help.yaml:")
    assert "clauses[0].consent: article6 is consent, so consent cannot be " in problem
    assert "required_unless_safeguarding" in problem
    assert "\n" not in problem


@pytest.mark.parametrize(
    "basis",
    [
        {"article6": "consent", "article10": "explicit_consent"},  # consent throughout
        {"article6": "public_task", "article9": "explicit_consent"},  # replaced on override
    ],
)
def test_check_accepts_consent_bases_no_override_can_misstate(
    basis: dict[str, str], tmp_path: Path
) -> None:
    rule = "required" if basis["article6"] == "consent" else "required_unless_safeguarding"
    _policy(tmp_path, _police_clause(lawful_basis=basis, consent=rule))
