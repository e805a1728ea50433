"""Two clauses giving one recipient a field in different forms: a warning, and one rule.

A field any sharing clause gives plainly travels plainly (the fields are the union, BRIEF
section 4 rule 6); of two transforms, the one revealing least applies, whatever order the
clauses are in. ``accord policy check`` warns of each such field, naming both clauses.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from broker.policy._model import TRANSFORMS
from broker.policy._transform import LEAST_REVEALING, least_revealing
from tests.unit.policy.kit import AT, agreement, event, load

_BASE: dict[str, Any] = {
    "from": ["wmp"],
    "event_types": ["police.domestic_incident"],
    "purpose": "early_help",
    "lawful_basis": {"article6": "public_task", "article10": "safeguarding_children"},
    "consent": "not_required",
}
FIRST: dict[str, Any] = {
    **_BASE,
    "id": "masked",
    "to": ["hub:locality"],
    "share": ["subject.name", "subject.dob", "subject.nhs_number"],
    "transform": {"subject.dob": "age_band", "subject.nhs_number": "pseudonym"},
}
SECOND: dict[str, Any] = {
    **_BASE,
    "id": "plain",
    "to": ["hub-tipton"],
    "share": ["subject.name", "subject.dob", "subject.nhs_number"],
    "transform": {"subject.dob": "year_of_birth"},
}


def _clauses(*clauses: dict[str, Any], **change: Any) -> list[dict[str, Any]]:
    out = [copy.deepcopy(c) for c in clauses]
    out[-1].update(change)
    return out


def _warnings(tmp_path: Path, clauses: list[dict[str, Any]]) -> list[str]:
    policy = load(tmp_path / "b", agreements=[agreement("a", clauses)], restrictions=[])
    return [w for w in policy.warnings() if "can both share" in w]


def test_a_field_two_clauses_share_in_different_forms_is_warned_of_naming_both(
    tmp_path: Path,
) -> None:
    assert _warnings(tmp_path, _clauses(FIRST, SECOND)) == [
        "agreement 'a', clause 'masked' and agreement 'a', clause 'plain' can both share with"
        " hub-tipton (wmp's police.domestic_incident), and share subject.dob as age_band and"
        " as year_of_birth: when both apply, age_band, which reveals less, applies",
        "agreement 'a', clause 'masked' and agreement 'a', clause 'plain' can both share with"
        " hub-tipton (wmp's police.domestic_incident), and share subject.nhs_number as"
        " pseudonym and plainly: when both apply, the share without a transform wins, so it"
        " gets the field as it is",
    ]


@pytest.mark.parametrize(
    "change",
    [
        {"from": ["swbh"]},
        {"event_types": ["police.child_concern"]},
        {"to": ["coord"]},  # FIRST reaches hubs only
        {"subjects": ["parent"]},  # FIRST's subjects then say child only
        {"when": "recipient.id != 'hub-tipton' && event.need_level >= 2"},
        {"transform": {"subject.dob": "age_band", "subject.nhs_number": "pseudonym"}},
    ],
)
def test_clauses_that_never_meet_on_a_field_or_agree_are_not_warned_of(
    tmp_path: Path, change: dict[str, Any]
) -> None:
    first = {**FIRST, "subjects": ["child"]} if "subjects" in change else FIRST
    assert _warnings(tmp_path, _clauses(first, SECOND, **change)) == []


def test_a_draft_or_a_clause_of_dates_apart_is_not_warned_of(tmp_path: Path) -> None:
    for over in ({"status": "draft"}, {"valid_from": "2028-01-01", "valid_until": "2028-12-31"}):
        agreements = [agreement("a", [copy.deepcopy(FIRST)]), agreement("b", [SECOND], **over)]
        policy = load(tmp_path / str(len(over)), agreements=agreements, restrictions=[])
        assert [w for w in policy.warnings() if "can both share" in w] == []


@pytest.mark.parametrize("order", [(FIRST, SECOND), (SECOND, FIRST)])
def test_the_plain_share_wins_and_the_least_revealing_transform_whatever_the_order(
    tmp_path: Path, order: tuple[dict[str, Any], ...]
) -> None:
    policy = load(tmp_path / "b", agreements=[agreement("a", _clauses(*order))], restrictions=[])
    (decision,) = [d for d in policy.decide(event(), [], at=AT) if d.recipient == "hub-tipton"]
    assert decision.outcome == "shared"
    assert decision.transforms == {"subject.dob": "age_band"}
    assert "subject.nhs_number" in decision.fields_shared


def test_every_transform_has_a_place_in_the_order_and_a_pseudonym_reveals_least() -> None:
    assert sorted(LEAST_REVEALING) == sorted(TRANSFORMS)
    assert least_revealing(["year_of_birth", "age_band"]) == "age_band"
    assert least_revealing(["age_band", "pseudonym"]) == "pseudonym"
    assert least_revealing(["initials", "pseudonym"]) == "pseudonym"
    assert least_revealing(["postcode_district", "pseudonym"]) == "pseudonym"


def test_each_clauses_recipients_are_worked_out_once_not_once_per_pair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CEL run per party each time: per pair, a bundle of hundreds of clauses and parties
    would take minutes to check. The warnings are the same for it."""
    from broker.policy import _treatments

    calls: list[str] = []
    recipients = _treatments._recipients

    def counted(bundle: Any, clause: Any) -> set[str]:
        calls.append(clause.id)
        return recipients(bundle, clause)

    monkeypatch.setattr(_treatments, "_recipients", counted)
    when = {"when": "recipient.id.startsWith('hub-') && event.need_level >= 1"}
    clauses = [{**FIRST, **when, "id": f"masked-{n}"} for n in range(12)] + [SECOND]
    warnings = _warnings(tmp_path, copy.deepcopy(clauses))
    assert sorted(calls) == sorted(c["id"] for c in clauses)  # once each: linear, 13 not 156
    assert len(warnings) == 12 * 2  # each masked clause meets the plain one on two fields
