"""`accord policy check|test` with flags.yaml: rules counted, flag scenarios run beside others."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.audit.conftest import Run

REPO = Path(__file__).resolve().parents[3]


def test_check_reports_the_number_of_flag_rules(run_cli: Run) -> None:
    code, out, _ = run_cli(["policy", "check", str(REPO / "policies")])
    assert code == 0
    assert ", 4 flag rules; version sha256:" in out


def test_check_lists_a_bad_flag_rule_with_file_and_line(tmp_path: Path, run_cli: Run) -> None:
    bundle = tmp_path / "b"
    bundle.mkdir()
    for name in ("parties.yaml", "restrictions.yaml"):
        (bundle / name).write_text((REPO / "policies" / name).read_text())
    rules = {"flags": [{"id": "x", "title": "X", "window": "7d", "when": "agencies >= 2"}]}
    (bundle / "flags.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
    code, out, err = run_cli(["policy", "check", str(bundle)])
    assert code != 0
    assert out.splitlines() == [
        "flags.yaml:5: flags[0].when: CEL refers to unknown name 'agencies' (known: contacts, "
        "distinct_agencies, max_need, categories, types, senders, household)"
    ]
    assert err.strip() == f"accord: error: {bundle}: 1 problem"


def test_test_runs_flag_and_decision_scenarios_together(
    run_cli: Run,
) -> None:
    scenarios = REPO / "policies" / "scenarios"
    code, out, _ = run_cli(
        ["policy", "test", str(scenarios / "flags.yaml"), str(scenarios / "referrals.yaml")],
    )
    assert code == 0, out
    lines = out.splitlines()
    assert "PASS a flag does not fire again within its window, and does after it" in out
    assert sum(line.startswith("PASS") for line in lines) >= 7


def test_a_failing_flag_scenario_says_what_differs_and_exits_1(
    tmp_path: Path, run_cli: Run
) -> None:
    scenario = [
        {
            "name": "one level-4 contact",
            "policies": str(REPO / "policies"),
            "flag_events": [
                {
                    "event_id": "a1",
                    "type": "police.child_concern",
                    "sender": "wmp",
                    "occurred_at": "2026-01-01T00:00:00Z",
                    "need_level": 4,
                    "subjects": [{"role": "child", "nhs_number": "9993080233"}],
                },
            ],
            "expect_flags": [],
        }
    ]
    path = tmp_path / "f.yaml"
    path.write_text(yaml.safe_dump(scenario, sort_keys=False))
    code, out, _ = run_cli(["policy", "test", str(path)])
    assert code == 1
    assert "     raised, not expected: need-level-4 for 9993080233: [a1]" in out.splitlines()
    assert out.splitlines()[-1] == "0 passed, 1 failed"


def test_the_shared_flag_scenarios_pass_through_the_cli(shared_dir: Path, run_cli: Run) -> None:
    code, out, _ = run_cli(["policy", "test", str(shared_dir / "examples" / "flag-scenarios")])
    assert code == 0, out
    assert out.splitlines()[-1] == "1 passed, 0 failed"


def _bundle_with_rule(root: Path, when: str) -> Path:
    root.mkdir()
    for name in ("parties.yaml", "restrictions.yaml"):
        (root / name).write_text((REPO / "policies" / name).read_text())
    rules = {"flags": [{"id": "odd", "title": "Odd", "window": "7d", "when": when}]}
    (root / "flags.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
    return root


def test_check_refuses_a_rule_that_fails_on_a_window_without_categories(
    tmp_path: Path, run_cli: Run
) -> None:
    """The review's rule passed `accord policy check`; a need-level-4 window without shared
    categories makes it fail, and the check now tries such a window."""
    bundle = _bundle_with_rule(tmp_path / "b", "max_need >= 4 && categories[0] != 'x'")
    code, out, err = run_cli(["policy", "check", str(bundle)])
    assert code != 0
    assert out.splitlines() == [
        "flags.yaml:5: flags[0].when: CEL fails on well-formed aggregates (IndexError), "
        "e.g. a busy window with categories []"
    ]
    assert err.strip() == f"accord: error: {bundle}: 1 problem"


@pytest.mark.parametrize("expected", [[], [{"rule": "odd", "nhs_number": "9993080233",
                                            "event_ids": ["a1"]}]])  # fmt: skip
def test_test_names_a_rules_runtime_failure_in_its_fail_lines(
    tmp_path: Path, run_cli: Run, expected: list[Any]
) -> None:
    """A rule failing on a window the load-time samples miss: the scenario fails, first
    naming the rule, the error's type and the record, even when no flag was expected."""
    bundle = _bundle_with_rule(
        tmp_path / "b", "max_need == 4 && contacts == 1 && categories[0] != 'x'"
    )
    event = {"type": "police.child_concern", "sender": "wmp", "need_level": 4,
             "subjects": [{"role": "child", "nhs_number": "9993080233"}]}  # fmt: skip
    events = [{**event, "event_id": "a0", "occurred_at": "2026-01-01T00:00:00Z",
               "need_level": 2, "categories": ["neglect"]},
              {**event, "event_id": "a1", "occurred_at": "2026-02-01T00:00:00Z"}]  # fmt: skip
    scenario = [{"name": "a need-level-4 record with no category", "policies": str(bundle),
                 "flag_events": events, "expect_flags": expected}]  # fmt: skip
    path = tmp_path / "f.yaml"
    path.write_text(yaml.safe_dump(scenario, sort_keys=False))
    code, out, _ = run_cli(["policy", "test", str(path)])
    assert code == 1
    lines = out.splitlines()
    at = lines.index(f"FAIL a need-level-4 record with no category ({path})")
    assert lines[at + 1] == (
        "     rule 'odd' failed at runtime (IndexError) at flag_events[1], and did not fire "
        "there: its condition cannot be evaluated on that window"
    )
    if expected:
        assert lines[at + 2] == "     expected, not raised: odd for 9993080233: [a1]"
    assert lines[-1] == "0 passed, 1 failed"
