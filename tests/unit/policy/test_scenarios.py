"""Scenario files: the brief's shared examples pass unchanged; failures give precise diffs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from broker.errors import ScenarioInvalid
from broker.policy import Policy, load_scenarios, run_scenario
from broker.policy._scenario import collect_files, run_scenarios
from tests.unit.policy.kit import write_bundle

REPO = Path(__file__).resolve().parents[3]
SHARED_SCENARIOS = REPO.parent / "shared" / "examples" / "scenarios"


def _shared_files() -> list[Path]:
    if not SHARED_SCENARIOS.is_dir():
        return []
    return collect_files([SHARED_SCENARIOS])


@pytest.mark.skipif(
    not SHARED_SCENARIOS.is_dir(), reason=f"../shared is not beside this clone ({SHARED_SCENARIOS})"
)
def test_every_shared_example_scenario_passes() -> None:
    results = list(run_scenarios(_shared_files(), None))
    assert results
    failures = [r for r in results if isinstance(r, ScenarioInvalid) or not r.passed]
    assert not failures, "\n".join(
        str(r) if isinstance(r, ScenarioInvalid) else f"{r.scenario.name}: {r.diffs}"
        for r in failures
    )
    assert len(results) >= 13


SCENARIO = """
- name: hub without consent, school told
  policies: {bundle}
  at: 2026-11-22T08:00:00Z
  consents: []
  event: &ev
    event_id: 5b0f6c1e-0d0a-4c1e-9d55-0a7c2b1e0001
    type: police.domestic_incident
    sender: wmp
    occurred_at: 2026-11-21T22:40:00Z
    reference: R1
    need_level: 3
    child_present: true
    categories: [domestic_abuse]
    location: Home
    subjects:
      - {{role: child, nhs_number: "9997877896", given_name: Amy, family_name: Hollis,
         dob: "2019-03-02", postcode: DY4 7AA, school_urn: "100001"}}
  expect:
    hub-tipton: {{outcome: {hub_outcome}, reason: consent-missing}}
    school-a: {{outcome: shared, subjects: {subjects}, include: [subject.name],
               exclude: [{exclude}]}}
    absent: [{absent}]
- name: merged event
  policies: {bundle}
  at: 2026-11-22T08:00:00Z
  event:
    <<: *ev
    need_level: 1
  expect:
    coord: {{outcome: not_shared, reason: condition-false}}
"""


def _write(tmp_path: Path, **over: str) -> Path:
    bundle = write_bundle(tmp_path / "bundle")
    values = {
        "hub_outcome": "not_shared",
        "subjects": "1",
        "exclude": "subject.nhs_number",
        "absent": "school-b",
    }
    values.update(over)
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO.format(bundle="bundle", **values))
    assert bundle.is_dir()
    return path


def _run(path: Path) -> list[list[str]]:
    return [r.diffs for s in load_scenarios(path) for r in [run_scenario(s, _loader)]]


def _loader(path: Path | None) -> Policy:
    assert path is not None
    return Policy.load(path)


def test_a_correct_scenario_file_passes_with_anchors_and_merge_keys(tmp_path: Path) -> None:
    assert _run(_write(tmp_path)) == [[], []]


def test_policies_are_relative_to_the_scenario_file(tmp_path: Path) -> None:
    (scenario, _) = load_scenarios(_write(tmp_path))
    assert scenario.policies == (tmp_path / "bundle").resolve()


def test_a_folder_of_examples_runs_its_scenarios_and_not_its_bundles_files(tmp_path: Path) -> None:
    """``accord policy test examples/``: the bundles' own files are not read as scenarios, and
    the scenarios a bundle keeps in a folder of its own are run; links are not followed."""
    scenario = _write(tmp_path)
    nested = tmp_path / "more" / "bundle-copy"
    write_bundle(nested)
    (nested.parent / "same.yml").write_text(scenario.read_text().replace("bundle", "bundle-copy"))
    (nested / "scenarios").mkdir()
    inside = nested / "scenarios" / "inside.yaml"
    inside.write_text(scenario.read_text().replace("policies: bundle", "policies: .."))
    (nested / "scenarios" / "up").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "port.yaml").write_text("package: x\n")
    files = collect_files([tmp_path])
    assert files == [inside, tmp_path / "more" / "same.yml", scenario]
    results = list(run_scenarios(files, None))
    assert len(results) == 6  # two scenarios a file
    assert all(not isinstance(r, ScenarioInvalid) and r.passed for r in results)


@pytest.mark.parametrize(
    ("over", "diff"),
    [
        (
            {"hub_outcome": "shared"},
            "hub-tipton: outcome: expected shared, got not_shared (consent-missing)",
        ),
        ({"subjects": "2"}, "school-a: subjects: expected 2, got 1"),
        ({"exclude": "subject.name"}, "school-a: exclude subject.name: shared under encompass"),
        ({"absent": "coord"}, "coord: expected no decision, got shared"),
        ({"absent": "school-a"}, "school-a: expected no decision, got shared"),
    ],
)
def test_a_wrong_expectation_gives_a_precise_diff(
    tmp_path: Path, over: dict[str, str], diff: str
) -> None:
    first, second = _run(_write(tmp_path, **over))
    assert first == [diff]
    assert second == []


def test_expecting_an_unknown_party_or_a_non_candidate_is_a_failure(tmp_path: Path) -> None:
    path = _write(tmp_path)
    path.write_text(path.read_text().replace("coord: {outcome", "hub-wv1: {outcome"))
    _, second = _run(path)
    assert second == ["hub-wv1: expected not_shared, got no decision (not a candidate)"]
    path.write_text(path.read_text().replace("hub-wv1: {outcome", "hub-nowhere: {outcome"))
    _, second = _run(path)
    assert second == ["hub-nowhere: not a party in the bundle"]


def test_a_misspelt_party_under_absent_is_a_failure_not_a_pass(tmp_path: Path) -> None:
    first, _ = _run(_write(tmp_path, absent="hub-tiptn"))
    assert first == ["hub-tiptn: not a party in the bundle"]


def test_an_invalid_event_fails_the_scenario_naming_the_field(tmp_path: Path) -> None:
    path = _write(tmp_path)
    path.write_text(path.read_text().replace('"9997877896"', '"9997877897"'))
    first, _ = _run(path)
    assert len(first) == 1
    assert "subjects[0].nhs_number" in first[0]
    assert "9997877897" not in first[0]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            "name: x\nat: 2026-11-22T08:00:00\nevent: {}\nexpect: {a: {outcome: shared}}\n",
            "timezone",
        ),
        ("- [1, 2]\n", "expected a mapping"),
        (
            "name: x\nat: 2026-11-22T08:00:00Z\nevent: {}\nexpect: {a: {outcome: maybe}}\n",
            "expect.a.outcome",
        ),
        ("name: x\nat: 2026-11-22T08:00:00Z\nevent: {}\nexpect: {}\nwhat: 1\n", "unknown key"),
        ("name: [unclosed\n", "not valid YAML"),
        # The reader keeps the last of a repeated key: the first expectation would vanish.
        ("name: x\nat: 2026-11-22T08:00:00Z\nevent: {}\nexpect:\n  a: {outcome: shared}\n"
         "  a: {outcome: not_shared}\n", "duplicate key"),
        # A misspelt path is never shared, so excluding it would always pass.
        ("name: x\nat: 2026-11-22T08:00:00Z\nevent: {}\n"
         "expect: {a: {outcome: shared, exclude: [subject.adress]}}\n", "not a field path"),
        ("name: x\nat: 2026-11-22T08:00:00Z\nevent: {}\n"
         "expect: {a: {outcome: shared, exclude: [event.type]}}\n", "always travels"),
        ("name: x\nat: 2026-11-22T08:00:00Z\nevent: {}\n"
         "expect: {a: {outcome: shared, transform: {subject.dob: band}}}\n", "transform"),
        # A flag event's misspelt key or role would drop what it holds, and 'no flag' pass.
        ("name: x\nflag_events: [{event_id: a, catgories: [x]}]\nexpect_flags: []\n",
         r"flag_events\[0\]: unknown key\(s\) catgories"),
        ("name: x\nflag_events: [{event_id: a, subjects: [{role: kid}]}]\nexpect_flags: []\n",
         r"flag_events\[0\].subjects\[0\]: role must be"),
        ("name: x\nflag_events: [{event_id: a, subjects: 5}]\nexpect_flags: []\n",
         "'subjects' must be a list"),
        ("name: x\nflag_events: [{subjects: [{role: child, given_name: 123}]}]\n"
         "expect_flags: []\n", "values must be strings"),
    ],
)  # fmt: skip
def test_malformed_scenario_files_say_what_and_where(
    tmp_path: Path, text: str, fragment: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioInvalid, match=fragment) as info:
        load_scenarios(path)
    assert str(path) in str(info.value)


def _doc_sections() -> dict[str, str]:
    """docs/policy-language.md's numbered sections, by number, with their text."""
    text = (REPO / "docs" / "policy-language.md").read_text()
    parts = re.split(r"^## (\d+)\. ", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_a_misspelt_field_path_points_at_the_section_that_lists_the_fields(
    tmp_path: Path,
) -> None:
    """It pointed at §4 (restrictions); the field list is in §3."""
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: x\nat: 2026-11-22T08:00:00Z\nevent: {}\n"
        "expect: {coord: {outcome: shared, include: [subject.shoe]}}\n"
    )
    with pytest.raises(ScenarioInvalid) as err:
        load_scenarios(path)
    found = re.search(r"docs/policy-language\.md §(\d+), '([^']+)'", str(err.value))
    assert found is not None, str(err.value)
    assert f"**{found.group(2)}:**" in _doc_sections()[found.group(1)]


def test_every_section_a_message_names_exists_in_the_policy_guide() -> None:
    sections = _doc_sections()
    cited = {
        (m.group(1), str(source.relative_to(REPO)))
        for source in (REPO / "broker").rglob("*.py")
        for m in re.finditer(r"policy-language\.md,? (?:§|section )(\d+)", source.read_text())
    }
    assert cited
    assert [c for c in cited if c[0] not in sections] == []
