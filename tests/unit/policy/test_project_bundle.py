"""The project's own West Midlands bundle (`policies/`) is valid and all its scenarios pass.

The scenarios are the executable specification of the example bundle: if an engine change or
a bundle edit alters any decision, one of them names the party and the difference.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.cli import main
from broker.policy import Policy, Scenario, load_bundle, load_scenarios, run_scenario

REPO = Path(__file__).resolve().parents[3]
BUNDLE = REPO / "policies"
SCENARIOS = BUNDLE / "scenarios"
MIN_SCENARIOS = 30


def _project_scenarios() -> list[Scenario]:
    """The decision scenarios (flag scenarios run in tests/unit/desk)."""
    found = [s for f in sorted(SCENARIOS.glob("*.yaml")) for s in load_scenarios(f)]
    return [s for s in found if isinstance(s, Scenario)]


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_bundle(BUNDLE)


@pytest.fixture(scope="module")
def scenarios() -> list[Scenario]:
    return _project_scenarios()


def test_the_project_bundle_loads_with_every_lifecycle_state() -> None:
    bundle = load_bundle(BUNDLE).bundle  # raises BundleInvalid listing every problem
    kinds = {p.kind for p in bundle.parties.values()}
    assert kinds == {"agency", "coordinating_team", "hub", "school"}
    assert any(p.status == "suspended" for p in bundle.parties.values())
    statuses = {a.status for a in bundle.agreements}
    assert statuses == {"draft", "approved", "suspended"}
    assert sum(len(a.clauses) for a in bundle.agreements) >= 15
    assert bundle.restrictions


def test_accord_policy_check_accepts_the_project_bundle(capsys: pytest.CaptureFixture[str]) -> None:
    code: Any = 0
    try:
        main(["policy", "check", str(BUNDLE)])
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    assert code in (0, None), captured.err
    assert captured.out.startswith("ok:")


def test_there_are_at_least_thirty_project_scenarios(scenarios: list[Scenario]) -> None:
    assert len(scenarios) >= MIN_SCENARIOS
    names = [s.name for s in scenarios]
    assert len(names) == len(set(names)), "scenario names must be unique"


def test_project_scenarios_use_the_project_bundle(scenarios: list[Scenario]) -> None:
    for scenario in scenarios:
        assert scenario.policies in (None, BUNDLE.resolve()), scenario.name


def _ids() -> Iterator[Any]:
    for scenario in _project_scenarios():
        yield pytest.param(scenario, id=f"{scenario.file.stem}:{scenario.position}")


@pytest.mark.parametrize("scenario", list(_ids()))
def test_project_scenario_passes(scenario: Scenario, policy: Policy) -> None:
    result = run_scenario(scenario, lambda path: policy if path is None else load_bundle(path))
    assert result.passed, f"{scenario.name}:\n  " + "\n  ".join(result.diffs)


def test_scenarios_exercise_every_outcome_reason_and_transform(scenarios: list[Scenario]) -> None:
    """Guards the suite's coverage: editing a scenario away cannot silently drop a path."""
    outcomes: set[str] = set()
    reasons: set[str] = set()
    transforms: set[str] = set()
    absent = 0
    for scenario in scenarios:
        absent += len(scenario.absent)
        for exp in scenario.expect.values():
            outcomes.add(exp.outcome)
            if exp.reason:
                reasons.add(exp.reason)
            transforms.update(exp.transform.values())
    assert outcomes == {"shared", "shared_override", "not_shared"}
    # no-agreement cannot be reached: a party is a candidate only when some clause of an
    # agreement in force could send to it, and that clause always yields a stronger reason.
    assert reasons == {
        "party-inactive",
        "suppressed",
        "agreement-inactive",
        "condition-false",
        "consent-missing",
        "consent-refused",
        "consent-withdrawn",
    }
    assert transforms == {"age_band", "year_of_birth", "postcode_district", "initials", "pseudonym"}
    assert absent > 0


def test_scenario_nhs_numbers_are_from_the_synthetic_999_range(scenarios: list[Scenario]) -> None:
    seen = 0
    for scenario in scenarios:
        people = [*scenario.event["subjects"], *(c["subject"] for c in scenario.consents)]
        for person in people:
            if person.get("nhs_number") is not None:
                seen += 1
                assert str(person["nhs_number"]).startswith("999"), scenario.name
    assert seen > 0
