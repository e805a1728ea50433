"""`accord policy test` says which bundle it tests, and never tests a draft's scenarios
under another bundle without being told to (IG review: `accord policy test draft/scenarios`
from a folder without policies/ ran them under the example bundle, and a draft that broke a
scenario read "75 passed, 0 failed")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from broker.policy import load_bundle
from tests.unit.audit.conftest import Run
from tests.unit.policy.kit import event_dict, write_bundle

REPO = Path(__file__).resolve().parents[3]

SCENARIO = """
name: school is told
at: 2026-11-22T08:00:00Z
event: {event}
expect:
  school-a: {{outcome: shared, subjects: 1}}
"""


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with no policies/ and no ACCORD_POLICIES: the default is the example."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("ACCORD_POLICIES", raising=False)
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path / "home"))
    return work


def _draft(root: Path) -> Path:
    """A bundle with its scenarios inside it, naming no bundle (as a copied policies/ has)."""
    write_bundle(root)
    (root / "scenarios").mkdir()
    (root / "scenarios" / "a.yaml").write_text(SCENARIO.format(event=json.dumps(event_dict())))
    return root


def test_a_drafts_scenarios_without_policies_are_refused_in_one_line_naming_the_fix(
    elsewhere: Path, run_cli: Run
) -> None:
    _draft(elsewhere / "draft")
    code, out, err = run_cli(["policy", "test", "draft/scenarios"])
    assert code == 2
    assert out == ""
    [line] = err.strip().splitlines()
    assert line.startswith(
        f"accord: error: {Path('draft/scenarios/a.yaml')} lies in the bundle draft, "
    )
    assert line.endswith("accord policy test draft/scenarios --policies draft")
    # A file in it too, and named by an absolute path.
    scenario = elsewhere / "draft" / "scenarios" / "a.yaml"
    code, _, err = run_cli(["policy", "test", str(scenario)])
    assert code == 2
    assert f"--policies {(elsewhere / 'draft').resolve()}" in err


def test_a_drafts_scenarios_that_name_their_own_bundle_run_under_it_without_policies(
    elsewhere: Path, run_cli: Run
) -> None:
    """The brief lets a scenario name its bundle (``policies``, relative to the file): a draft
    whose scenarios all say ``policies: ..`` is not refused, and runs under the draft."""
    draft = write_bundle(elsewhere / "draft")
    (draft / "scenarios").mkdir()
    text = "policies: ..\n" + SCENARIO.format(event=json.dumps(event_dict())).lstrip()
    (draft / "scenarios" / "a.yaml").write_text(text)
    code, out, err = run_cli(["policy", "test", "draft/scenarios"])
    assert code == 0, out + err
    lines = out.strip().splitlines()
    assert lines[1] == (
        f"policy bundle {draft.resolve()}, version {load_bundle(draft).version} "
        f"(named by {Path('draft/scenarios/a.yaml')})"
    )
    assert lines[2].startswith("PASS school is told")
    assert lines[-1] == "1 passed, 0 failed"


def test_a_file_in_a_draft_with_one_scenario_naming_no_bundle_is_refused(
    elsewhere: Path, run_cli: Run
) -> None:
    """Naming its own bundle excuses only the scenario that does: one beside it naming none
    would still run under the default."""
    draft = write_bundle(elsewhere / "draft")
    (draft / "scenarios").mkdir()
    event = json.dumps(event_dict())
    own = "- policies: ..\n  " + SCENARIO.format(event=event).strip().replace("\n", "\n  ")
    none = "- " + SCENARIO.format(event=event).strip().replace("\n", "\n  ")
    (draft / "scenarios" / "a.yaml").write_text(f"{own}\n{none}\n")
    code, out, err = run_cli(["policy", "test", "draft/scenarios"])
    assert code == 2
    assert out == ""
    [line] = err.strip().splitlines()
    assert line.startswith(f"accord: error: {Path('draft/scenarios/a.yaml')} lies in the bundle")


def test_a_drafts_scenarios_found_through_a_parent_folder_are_refused_too(
    elsewhere: Path, run_cli: Run
) -> None:
    """``accord policy test drafts`` with the draft in drafts/v2 and the project's own
    policies/ here: the draft's scenarios would run under policies/, so refused as if
    drafts/v2/scenarios had been given, naming the file and the command for its folder."""
    _draft(elsewhere / "policies")
    _draft(elsewhere / "drafts" / "v2")
    code, out, err = run_cli(["policy", "test", "drafts"])
    assert code == 2
    assert out == ""
    v2 = Path("drafts/v2")
    assert err.strip().splitlines() == [
        f"accord: error: {v2 / 'scenarios' / 'a.yaml'} lies in the bundle {v2}, but its "
        f"scenarios that name no bundle run under policies: say which, e.g. accord policy "
        f"test {v2 / 'scenarios'} --policies {v2}"
    ]
    # The command it gives runs them under the draft.
    code, out, err = run_cli(["policy", "test", str(v2 / "scenarios"), "--policies", str(v2)])
    assert code == 0, out + err
    assert out.startswith(f"policy bundle {(elsewhere / v2).resolve()}, version ")
    # The project's own scenarios, given through the project folder, still run.
    code, out, err = run_cli(["policy", "test", "policies"])
    assert code == 2  # a bundle, not scenarios: refused for that, as before
    code, out, err = run_cli(["policy", "test", "policies/scenarios"])
    assert code == 0, out + err


def test_with_policies_the_draft_is_tested_and_the_first_line_says_so_with_its_version(
    elsewhere: Path, run_cli: Run
) -> None:
    draft = _draft(elsewhere / "draft")
    code, out, err = run_cli(["policy", "test", "draft/scenarios", "--policies", "draft"])
    assert code == 0, out + err
    lines = out.strip().splitlines()
    version = load_bundle(draft).version
    assert lines[0] == (
        f"policy bundle {draft.resolve()}, version {version} (for scenarios that name none)"
    )
    assert lines[1].startswith("PASS school is told")
    assert lines[-1] == "1 passed, 0 failed"


def test_scenarios_in_the_default_bundle_itself_run_under_it_and_it_is_named(
    elsewhere: Path, run_cli: Run
) -> None:
    """policies/scenarios from the project folder: the bundle around them is the default."""
    _draft(elsewhere / "policies")
    code, out, err = run_cli(["policy", "test", "policies/scenarios"])
    assert code == 0, out + err
    version = load_bundle(elsewhere / "policies").version
    assert out.startswith(f"policy bundle {(elsewhere / 'policies').resolve()}, version {version}")


def test_a_bundle_a_scenario_names_itself_is_named_before_its_first_result(
    elsewhere: Path, run_cli: Run
) -> None:
    bundle = write_bundle(elsewhere / "bundle")
    text = "policies: ../bundle\n" + SCENARIO.format(event=json.dumps(event_dict())).lstrip()
    (elsewhere / "scenarios").mkdir()
    scenario = elsewhere / "scenarios" / "a.yaml"
    scenario.write_text(text)
    code, out, err = run_cli(["policy", "test", "scenarios"])
    assert code == 0, out + err
    example = load_bundle(REPO / "policies").version
    lines = out.strip().splitlines()
    assert lines[0] == (
        f"policy bundle {(REPO / 'policies').resolve()}, version {example} "
        "(for scenarios that name none)"
    )
    assert lines[1] == (
        f"policy bundle {bundle.resolve()}, version {load_bundle(bundle).version} "
        f"(named by {Path('scenarios/a.yaml')})"
    )
    assert lines[2].startswith("PASS school is told")


def test_a_policies_bundle_that_does_not_load_is_refused_in_one_line_before_any_scenario(
    tmp_path: Path, run_cli: Run
) -> None:
    """Walkthrough: `--policies nosuch` printed a FAIL per scenario (75) and exit 1; the one
    cause is said once, as `policy explain` says it, and nothing runs."""
    broken = tmp_path / "broken"
    broken.mkdir()
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "a.yaml").write_text(SCENARIO.format(event=json.dumps(event_dict())))
    code, out, err = run_cli(["policy", "test", str(tmp_path / "scenarios"), "--policies",
                           str(broken)])  # fmt: skip
    assert code == 2
    assert out == ""
    assert err.startswith(f"accord: error: --policies {broken} does not load: ")
    assert len(err.strip().splitlines()) == 1


def test_a_default_bundle_that_does_not_load_is_said_first_and_its_scenarios_fail(
    tmp_path: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --policies a scenario may name its own bundle, so each still runs."""
    broken = tmp_path / "broken"
    broken.mkdir()
    monkeypatch.setenv("ACCORD_POLICIES", str(broken))
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "a.yaml").write_text(SCENARIO.format(event=json.dumps(event_dict())))
    code, out, _ = run_cli(["policy", "test", str(tmp_path / "scenarios")])
    assert code == 1
    lines = out.strip().splitlines()
    assert lines[0].startswith(f"policy bundle {broken.resolve()} (for scenarios that name none) "
                               "does not load: ")  # fmt: skip
    assert lines[-1] == "0 passed, 1 failed"


def test_a_policies_bundle_is_loaded_once_for_its_check_and_its_line(
    elsewhere: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check that it loads and the line naming its version share one load (the scenarios'
    own runner loads it once more, in broker.policy)."""
    from broker.policy import Policy

    draft = _draft(elsewhere / "draft")
    loads: list[Path] = []
    load = Policy.load.__func__  # type: ignore[attr-defined]  # a classmethod's function

    def counting(cls: type[Policy], folder: Path, *args: Any, **kwargs: Any) -> Policy:
        loads.append(Path(folder).resolve())
        return load(cls, folder, *args, **kwargs)  # type: ignore[no-any-return]

    monkeypatch.setattr(Policy, "load", classmethod(counting))
    code, out, _ = run_cli(["policy", "test", str(draft / "scenarios"), "--policies", str(draft)])
    assert code == 0, out
    assert loads.count(draft.resolve()) == 2
