"""Default-deny edges of the policy engine that the rule-by-rule tests left open.

Each test here was written because a small deliberate fault in broker/policy (``decide``,
``redact``, the bundle checks) or in the consent model it relies on let every other unit test
pass while the engine shared a record it should not have, shared it wrongly, let a bundle that
cannot mean what it says load, or refused where the brief says share.
"""

from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path

import pytest

from broker.errors import BundleInvalid
from broker.policy import Policy, redact
from tests.unit.policy.kit import (
    AT,
    PARTIES,
    by_recipient,
    consent,
    default_agreements,
    default_restrictions,
    event,
    load,
    subject,
    write_bundle,
)


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    return load(tmp_path / "bundle")


def test_a_withdrawal_and_a_consent_recorded_at_the_same_instant_withdraw(
    policy: Policy,
) -> None:
    """On a tie in ``recorded_at`` the more protective state wins, in either order."""
    at = "2026-11-01T09:00:00Z"
    given = consent(recorded_at=at)
    withdrawn = consent(state="withdrawn", recorded_at=at)
    refused = consent(state="refused", recorded_at=at)
    for records in ([given, withdrawn], [withdrawn, given]):
        hub = by_recipient(policy.decide(event(), records, at=AT))["hub-tipton"]
        assert (hub.outcome, hub.reason) == ("not_shared", "consent-withdrawn")
    for records in ([given, refused], [refused, given]):
        hub = by_recipient(policy.decide(event(), records, at=AT))["hub-tipton"]
        assert (hub.outcome, hub.reason) == ("not_shared", "consent-refused")


@pytest.mark.parametrize(
    ("where", "key"),
    [
        ("clause", "wehn"),  # a misspelt condition must not vanish, sharing unconditionally
        ("restriction", "excpt_kinds"),
        ("party", "stauts"),  # a misspelt suspension must not leave the party active
        ("agreement", "satus"),
    ],
)
def test_a_misspelt_key_in_a_bundle_is_a_problem_not_ignored(
    tmp_path: Path, where: str, key: str
) -> None:
    agreements = default_agreements()
    restrictions = default_restrictions()
    parties = copy.deepcopy(PARTIES)
    if where == "clause":
        clause = agreements[0]["clauses"][0]
        clause[key] = clause.pop("when")
    elif where == "restriction":
        restrictions[0][key] = restrictions[0].pop("except_kinds")
    elif where == "party":
        parties["hub-closed"][key] = parties["hub-closed"].pop("status")
    else:
        agreements[0][key] = "approved"
    root = write_bundle(tmp_path / "b", agreements=agreements, restrictions=restrictions,
                        parties=parties)  # fmt: skip
    with pytest.raises(BundleInvalid) as info:
        Policy.load(root)
    assert any(key in p and "unknown key" in p for p in info.value.problems)


def test_an_agreement_that_ends_before_it_starts_is_a_problem(tmp_path: Path) -> None:
    """It could never be in force: every share its author meant would be silently refused."""
    agreements = default_agreements()
    agreements[0]["valid_from"], agreements[0]["valid_until"] = "2027-12-31", "2026-01-01"
    with pytest.raises(BundleInvalid) as info:
        Policy.load(write_bundle(tmp_path / "b", agreements=agreements))
    assert any("valid_from is after valid_until" in p for p in info.value.problems)


def test_consent_is_in_force_up_to_and_including_its_valid_until_instant(policy: Policy) -> None:
    """A consent valid until the decision time still counts; a moment later it does not."""
    until = consent(valid_until=AT.isoformat())
    hub = by_recipient(policy.decide(event(), [until], at=AT))["hub-tipton"]
    assert hub.outcome == "shared"
    later = by_recipient(policy.decide(event(), [until], at=AT + timedelta(seconds=1)))
    assert later["hub-tipton"].reason == "consent-missing"


@pytest.mark.parametrize(
    "basis",
    [
        {"article6": "consent"},
        {"article6": "public_task", "article9": "explicit_consent"},
        {"article6": "public_task", "article10": "explicit_consent"},
    ],
)
def test_a_clause_whose_basis_is_consent_cannot_waive_consent(
    tmp_path: Path, basis: dict[str, str]
) -> None:
    """Otherwise it would share with no consent while claiming consent as its lawful basis."""
    agreements = default_agreements()
    clause = agreements[0]["clauses"][0]
    clause["lawful_basis"], clause["consent"] = basis, "not_required"
    with pytest.raises(BundleInvalid) as info:
        Policy.load(write_bundle(tmp_path / "b", agreements=agreements))
    assert any("consent cannot be not_required" in p for p in info.value.problems)


def test_a_clause_naming_an_unknown_recipient_is_a_problem(tmp_path: Path) -> None:
    """A misspelt recipient must fail the bundle, not reach ``decide`` as a party-less id."""
    agreements = default_agreements()
    agreements[0]["clauses"][0]["to"] = ["coord", "cord"]
    with pytest.raises(BundleInvalid) as info:
        Policy.load(write_bundle(tmp_path / "b", agreements=agreements))
    assert any("unknown party 'cord'" in p for p in info.value.problems)


def test_a_transform_of_a_field_the_clause_does_not_share_is_a_problem(tmp_path: Path) -> None:
    """Its author believes the field travels generalised; it does not travel at all."""
    agreements = default_agreements()
    agreements[0]["clauses"][0]["transform"] = {"subject.school_urn": "pseudonym"}
    with pytest.raises(BundleInvalid) as info:
        Policy.load(write_bundle(tmp_path / "b", agreements=agreements))
    assert any("which the clause does not share" in p for p in info.value.problems)


def test_an_age_band_is_the_age_at_the_decision_not_at_the_event(policy: Policy) -> None:
    """A child who turns 5 between the incident and the decision is banded 5-10."""
    ev = event(
        occurred_at="2026-11-21T22:40:00Z",
        subjects=[subject("child", dob="2021-11-22"), subject("parent")],
    )
    hub = by_recipient(policy.decide(ev, [consent()], at=AT))["hub-tipton"]
    assert hub.transforms["subject.dob"] == "age_band"
    view = redact(ev, hub)
    assert view["subjects"][0]["age_band"] == "5-10"


@pytest.mark.parametrize("where", ["clause", "restriction"])
def test_a_condition_that_is_not_true_or_false_is_a_problem(tmp_path: Path, where: str) -> None:
    """It could never decide: a clause would never share, a restriction always withhold."""
    agreements = default_agreements()
    restrictions = default_restrictions()
    if where == "clause":
        agreements[0]["clauses"][0]["when"] = "event.need_level"
    else:
        restrictions[0]["when"] = "event.service"
    root = write_bundle(tmp_path / "b", agreements=agreements, restrictions=restrictions)
    with pytest.raises(BundleInvalid) as info:
        Policy.load(root)
    assert any("does not evaluate to true or false" in p for p in info.value.problems)
