"""Scenarios judge what a recipient receives: the people in its view, views as delivered."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from broker.policy import Policy, load_scenarios, run_scenario
from broker.policy._flag_scenario import FlagScenario
from broker.policy._redact import redact
from broker.policy._scenario import Scenario
from tests.unit.policy.kit import (
    AT,
    POLICE_TO_COORD,
    agreement,
    by_recipient,
    default_agreements,
    event,
    event_dict,
    load,
    subject,
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


@pytest.mark.parametrize("as_json", [False, True])
def test_a_view_exactly_as_delivered_is_a_valid_flag_event(tmp_path: Path, as_json: bool) -> None:
    """The ``sharing`` block every view carries, and a shared field the event left empty."""
    parent = {k: v for k, v in subject("parent").items() if k != "address"}
    ev = event(subjects=[subject("child"), parent])
    policy = load(tmp_path / "b")
    decision = by_recipient(policy.decide(ev, [], at=AT))["coord"]
    view = redact(ev, decision)
    assert "sharing" in view
    assert view["subjects"][1]["address"] is None
    if as_json:  # as ``accord tail --json`` prints it
        view = json.loads(json.dumps(view))
    path = tmp_path / "flags.yaml"
    path.write_text(yaml.safe_dump({"name": "received", "flag_events": [view], "expect_flags": []}))
    (loaded,) = load_scenarios(path)
    assert isinstance(loaded, FlagScenario)
    assert loaded.events == (view,)
