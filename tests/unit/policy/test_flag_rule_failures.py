"""A flag rule whose condition fails is never silent: refused at load when a sample window
(empty, single and busy shapes, lists empty or short) makes it fail, and reported at runtime
(rule id and error type only) when a window the samples miss does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from structlog.testing import capture_logs

from broker.errors import BundleInvalid
from broker.policy import CompiledFlagRule, load_bundle
from tests.unit.policy.kit import write_bundle

# Loads (no sample is need 4 with a single record and no category), fails on such a window.
ODD = "max_need == 4 && contacts == 1 && categories[0] != 'x'"
ONE_RECORD_NO_CATEGORY = {"contacts": 1, "distinct_agencies": 1, "max_need": 4,
                          "categories": [], "types": ["police.child_concern"],
                          "senders": ["wmp"]}  # fmt: skip


def _bundle(root: Path, when: str) -> Path:
    write_bundle(root)
    rule = {"id": "odd", "title": "A rule", "window": "30d", "when": when}
    (root / "flags.yaml").write_text(yaml.safe_dump({"flags": [rule]}, sort_keys=False))
    return root


def _problem(root: Path) -> str:
    with pytest.raises(BundleInvalid) as info:
        load_bundle(root)
    [problem] = info.value.problems
    return problem


def _rule(tmp_path: Path, when: str = ODD) -> CompiledFlagRule:
    [rule] = load_bundle(_bundle(tmp_path / "b", when)).flag_rules
    return rule


def test_the_operators_rule_indexing_categories_is_refused_at_load(tmp_path: Path) -> None:
    """The review's case: it passed `accord policy check`, then dropped every need-level-4
    child without shared categories."""
    problem = _problem(_bundle(tmp_path / "b", "max_need >= 4 && categories[0] != 'x'"))
    assert problem.startswith("flags.yaml:")
    assert "flags[0].when: CEL fails on well-formed aggregates (IndexError)" in problem
    assert "e.g. a busy window with categories []" in problem


@pytest.mark.parametrize(
    ("when", "error", "sample"),
    [
        ("contacts >= 1 && senders[0] != 'x'", "IndexError", "with senders []"),
        ("max_need >= 3 && types[0] != 'x'", "IndexError", "with types []"),
        # The rule's own strings are in the samples' lists, so its guard lets the rest run.
        ("'neglect' in categories && categories[2] == 'x'", "IndexError",
         "a window of one record"),
        ("contacts / distinct_agencies >= 2", "ZeroDivisionError", "distinct_agencies 0"),
        ("household.children >= 1 && household.senders[0] == 'x'", "IndexError",
         "its household a busy window with senders []"),
        ("household.contacts / household.children > 1", "ZeroDivisionError", "children 0"),
    ],
)  # fmt: skip
def test_a_condition_failing_on_an_edge_shaped_window_is_refused_at_load(
    tmp_path: Path, when: str, error: str, sample: str
) -> None:
    problem = _problem(_bundle(tmp_path / "b", when))
    assert f"CEL fails on well-formed aggregates ({error})" in problem
    assert sample in problem


@pytest.mark.parametrize(
    "when",
    [
        "size(categories) > 0 && categories[0] == 'x'",
        "categories.exists(c, c == 'neglect') || contacts > 2",
        "distinct_agencies > 0 && contacts / distinct_agencies >= 2",
        "'domestic_abuse' in household.categories && household.children >= 2",
    ],
)
def test_a_guarded_condition_still_loads(tmp_path: Path, when: str) -> None:
    assert _rule(tmp_path, when).id == "odd"


def test_a_runtime_failure_is_reported_with_the_rule_and_error_type_only(
    tmp_path: Path,
) -> None:
    told: list[tuple[str, str]] = []
    rule = _rule(tmp_path)
    reporting = CompiledFlagRule(rule.rule, rule.window, rule.program, rule.household,
                                 failed=lambda *t: told.append(t))  # fmt: skip
    assert not reporting.holds(ONE_RECORD_NO_CATEGORY)
    assert told == [("odd", "IndexError")]
    assert reporting.holds({**ONE_RECORD_NO_CATEGORY, "categories": ["neglect"]})
    assert told == [("odd", "IndexError")]


def test_a_runtime_failure_with_no_one_to_tell_is_logged(tmp_path: Path) -> None:
    rule = _rule(tmp_path)
    with capture_logs() as logs:
        assert not rule.holds(ONE_RECORD_NO_CATEGORY)
    assert logs == [
        {"event": "flags_rule_failed", "rule": "odd", "error": "IndexError",
         "log_level": "error"},
    ]  # fmt: skip


def test_a_result_that_is_not_true_or_false_at_runtime_is_a_failure(tmp_path: Path) -> None:
    told: list[Any] = []
    rule = _rule(tmp_path, "contacts == 7 ? 1 : true")
    reporting = CompiledFlagRule(rule.rule, rule.window, rule.program,
                                 failed=lambda *t: told.append(t))  # fmt: skip
    assert not reporting.holds({**ONE_RECORD_NO_CATEGORY, "contacts": 7})
    assert told == [("odd", "NotABoolean")]
