"""A ``condition-false`` note of a decision recorded before decisions named each clause's
agreement pairs a clause with its agreement only where the bundle that decided it leaves no
doubt: clause ids are unique within an agreement only, and such a record names one agreement
beside every clause id."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from broker.governance._conditions import unmet_conditions
from broker.policy import Policy, load_bundle

POLICIES = Path(__file__).parents[3] / "policies"
COORD_WHEN = "event.need_level >= 2 && event.subjects.exists(s, s.postcode_district in"


def pre_grounds(policy: Policy, agreement_id: str, *clauses: str) -> SimpleNamespace:
    """An index line of a ``decided`` record without ``grounds``: one agreement id, the
    clause ids, as decisions were recorded before grounds existed."""
    return SimpleNamespace(
        kind="decision", reason="condition-false", policy_version=policy.version,
        agreement_id=agreement_id, clauses=clauses, grounds=(),
    )  # fmt: skip


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_bundle(POLICIES)


@pytest.fixture(scope="module")
def shared_id(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    """The example bundle with wolverhampton-mash's police clause renamed to an id
    sandwell-early-help also has."""
    folder = tmp_path_factory.mktemp("bundle") / "policies"
    shutil.copytree(POLICIES, folder, ignore=shutil.ignore_patterns("scenarios"))
    mash = folder / "agreements" / "wolverhampton-mash.yaml"
    mash.write_text(mash.read_text().replace("id: police-to-mash", "id: police-to-coord"))
    return load_bundle(folder)


def test_a_clause_of_another_agreement_is_paired_with_the_one_agreement_that_has_it(
    policy: Policy,
) -> None:
    # The record's agreement is the first winning clause's; police-to-coord is sandwell's.
    line = pre_grounds(policy, "wolverhampton-mash", "police-to-coord")
    [note] = unmet_conditions([line], policy)
    assert "sandwell-early-help / police-to-coord: when" in note
    assert COORD_WHEN in note
    assert "wolverhampton-mash" not in note


def test_a_clause_id_two_agreements_have_is_not_guessed(shared_id: Policy) -> None:
    line = pre_grounds(shared_id, "sandwell-early-help", "police-to-coord")
    [note] = unmet_conditions([line], shared_id)
    assert "2 agreements of its bundle have a clause 'police-to-coord'" in note
    assert "the record cannot tell which one's condition was not met" in note
    # Each agreement's condition, so the officer can weigh them with the event.
    mash = next(a for a in shared_id.bundle.agreements if a.id == "wolverhampton-mash")
    [clause] = [c for c in mash.clauses if c.id == "police-to-coord"]
    assert f"wolverhampton-mash: when {' '.join((clause.when or '').split())}" in note
    assert f"sandwell-early-help: when {COORD_WHEN}" in note


def test_recorded_grounds_are_read_as_recorded_even_where_ids_are_shared(
    shared_id: Policy,
) -> None:
    ground = SimpleNamespace(agreement_id="sandwell-early-help", clause_id="police-to-coord")
    line = pre_grounds(shared_id, "sandwell-early-help")
    line.grounds = (ground,)
    [note] = unmet_conditions([line], shared_id)
    assert "sandwell-early-help / police-to-coord: when" in note
    assert COORD_WHEN in note


def test_two_lines_paired_with_one_clause_give_one_note(policy: Policy) -> None:
    lines = [
        pre_grounds(policy, "wolverhampton-mash", "police-to-coord"),
        pre_grounds(policy, "sandwell-early-help", "police-to-coord"),
    ]
    assert len(unmet_conditions(lines, policy)) == 1
