"""Scenarios judge what a recipient receives: the people in its view, views as delivered."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from broker.policy import Policy, load_scenarios, run_scenario
from broker.policy._scenario import Scenario
from tests.unit.policy.kit import (
    AT,
    POLICE_TO_COORD,
    agreement,
    default_agreements,
    event_dict,
    write_bundle,
)


def _event_fields_only(root: Path) -> Path:
    """The kit's bundle, with the police clause to the team sharing no one's details."""
    agreements = default_agreements()
    clause = copy.deepcopy(POLICE_TO_COORD)
    clause["share"] = ["event.need_level", "event.reference"]
    agreements[0] = agreement("early-help", [clause])
    return write_bundle(root, agreements=agreements)


def _diffs(tmp_path: Path, people: int) -> list[str]:
    bundle = _event_fields_only(tmp_path / "bundle")
    scenario = {
        "name": "event fields only",
        "policies": "bundle",
        "at": AT.isoformat(),
        "event": event_dict(),
        "expect": {"coord": {"outcome": "shared", "subjects": people}},
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump([scenario], sort_keys=False))
    (loaded,) = load_scenarios(path)
    assert isinstance(loaded, Scenario)
    assert loaded.policies == bundle.resolve()
    return run_scenario(loaded, Policy.load).diffs


def test_subjects_counts_the_people_in_the_view_not_the_decisions_subjects(
    tmp_path: Path,
) -> None:
    """A share of event fields alone shows no person, though the decision covers two."""
    assert _diffs(tmp_path, 0) == []
    assert _diffs(tmp_path, 2) == ["coord: subjects: expected 2, got 0"]
