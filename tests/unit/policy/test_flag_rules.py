"""flags.yaml: loaded with the bundle, every problem located, compiled once, in the version."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.errors import BundleInvalid
from broker.policy import load_bundle
from broker.policy._flags import parse_window
from tests.unit.policy.kit import write_bundle

RULES: list[dict[str, Any]] = [
    {
        "id": "multi-agency",
        "title": "Two or more agencies within 90 days",
        "window": "90d",
        "when": "distinct_agencies >= 2 && contacts >= 3",
    },
    {
        "id": "da-repeat",
        "title": "Domestic abuse twice in 30 days",
        "window": "30d",
        "when": "'domestic_abuse' in categories && contacts >= 2",
    },
    {"id": "nl4", "title": "Need level 4", "window": "12h", "when": "max_need >= 4"},
]


def _bundle(root: Path, rules: Any) -> Path:
    write_bundle(root)
    (root / "flags.yaml").write_text(yaml.safe_dump({"flags": rules}, sort_keys=False))
    return root


def _problems(root: Path) -> list[str]:
    with pytest.raises(BundleInvalid) as info:
        load_bundle(root)
    return info.value.problems


def test_rules_load_compiled_in_file_order_with_their_windows(tmp_path: Path) -> None:
    policy = load_bundle(_bundle(tmp_path / "b", RULES))
    assert [r.id for r in policy.flag_rules] == ["multi-agency", "da-repeat", "nl4"]
    assert [r.window for r in policy.flag_rules] == [
        timedelta(days=90),
        timedelta(days=30),
        timedelta(hours=12),
    ]
    da = policy.flag_rules[1]
    agg = {"contacts": 2, "distinct_agencies": 1, "max_need": 2, "types": [], "senders": []}
    assert da.holds({**agg, "categories": ["domestic_abuse"]})
    assert not da.holds({**agg, "categories": ["neglect"]})
    assert "3 flag rules" in policy.summary()


def test_a_bundle_without_flags_has_none_and_keeps_its_version(tmp_path: Path) -> None:
    plain = load_bundle(write_bundle(tmp_path / "a"))
    empty = load_bundle(_bundle(tmp_path / "b", []))
    assert plain.flag_rules == ()
    assert plain.version == empty.version
    assert "0 flag rules" in plain.summary()


def test_flag_rules_are_policy_a_changed_rule_changes_the_version(tmp_path: Path) -> None:
    a = load_bundle(_bundle(tmp_path / "a", RULES))
    changed = [dict(RULES[0], window="60d"), *RULES[1:]]
    b = load_bundle(_bundle(tmp_path / "b", changed))
    reordered = load_bundle(_bundle(tmp_path / "c", list(reversed(RULES))))
    plain = load_bundle(write_bundle(tmp_path / "d"))
    assert len({a.version, b.version, reordered.version, plain.version}) == 4


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"window": "90"}, "flags[0].window: window '90' must be Nd or Nh"),
        ({"window": "0d"}, "flags[0].window: window '0d' must be at least 1h"),
        ({"window": "0h"}, "window '0h' must be at least 1h"),
        ({"window": "99999d"}, "flags[0].window: window '99999d' must be at most 3660d (87840h)"),
        ({"window": "87841h"}, "window '87841h' must be at most 3660d"),
        ({"window": "3w"}, "must be Nd or Nh"),
        ({"window": "01d"}, "must be Nd or Nh"),
        ({"when": "kontacts >= 3"}, "CEL refers to unknown name 'kontacts'"),
        ({"when": "event.need_level >= 3"}, "CEL refers to unknown name 'event'"),
        ({"when": "contacts + 1"}, "does not evaluate to true or false"),
        ({"when": "max_need >= 'four'"}, "fails on well-formed aggregates"),
        ({"when": "contacts >="}, "CEL does not compile"),
        ({"when": "shout(contacts)"}, "unknown function 'shout'"),
        ({"when": "household.kids >= 2"}, "household has no aggregate 'kids' (it has: contacts,"),
        ({"when": "household >= 2"}, "fails on well-formed aggregates"),
        ({"colour": "red"}, "flags[0].colour: unknown key"),
        ({"title": None}, "flags[0].title"),
    ],
)
def test_a_bad_rule_is_refused_at_load_naming_file_line_and_field(
    tmp_path: Path, rule: dict[str, Any], expected: str
) -> None:
    problems = _problems(_bundle(tmp_path / "b", [{**RULES[0], **rule}]))
    assert len(problems) == 1, problems
    assert problems[0].startswith("flags.yaml:")
    assert problems[0].split(":")[1].isdigit()
    assert expected in problems[0]


def test_duplicate_ids_and_every_problem_are_reported_together(tmp_path: Path) -> None:
    rules = [RULES[0], {**RULES[1], "id": "multi-agency", "when": "nope > 1"}]
    problems = _problems(_bundle(tmp_path / "b", rules))
    assert any("flags[1].id: duplicate flag rule id 'multi-agency'" in p for p in problems)
    assert any("flags[1].when: CEL refers to unknown name 'nope'" in p for p in problems)
    line = int(next(p for p in problems if "duplicate" in p).split(":")[1])
    assert line > 5  # the second rule's line, not the file's first


def test_a_flags_file_of_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    root = write_bundle(tmp_path / "b")
    (root / "flags.yaml").write_text("rules: []\n")
    problems = _problems(root)
    assert problems == [
        "flags.yaml:1: expected 'flags:' holding a list of flag rules",
    ]


def test_the_project_bundle_has_the_briefs_three_rules_and_a_household_rule() -> None:
    repo = Path(__file__).resolve().parents[3]
    policy = load_bundle(repo / "policies")
    assert [(r.id, r.household) for r in policy.flag_rules] == [
        ("multi-agency", False),
        ("domestic-abuse-repeat", False),
        ("need-level-4", False),
        ("household-domestic-abuse", True),
    ]


def test_a_household_rule_sees_the_households_aggregates_beside_the_childs(
    tmp_path: Path,
) -> None:
    rule = {"id": "hh", "title": "Siblings", "window": "30d",
            "when": "household.children >= 2 && household.contacts > contacts"}  # fmt: skip
    [hh] = load_bundle(_bundle(tmp_path / "b", [rule])).flag_rules
    assert hh.household
    agg = {"contacts": 1, "distinct_agencies": 1, "max_need": 2, "categories": [],
           "types": [], "senders": []}  # fmt: skip
    house = {**agg, "children": 2}
    assert hh.holds({**agg, "household": {**house, "contacts": 2}})
    assert not hh.holds({**agg, "household": {**house, "contacts": 1}})
    assert not hh.holds({**agg, "household": {**house, "children": 1, "contacts": 3}})


@pytest.mark.parametrize(
    ("text", "window"),
    [("1d", timedelta(days=1)), ("36h", timedelta(hours=36)), ("90d", timedelta(days=90))],
)
def test_windows_are_days_or_hours(text: str, window: timedelta) -> None:
    assert parse_window(text) == window


@pytest.mark.parametrize("text", ["", "d", "1", "01d", "1.5d", "-1d", "1D", "99999d", " 1d"])
def test_other_windows_are_refused(text: str) -> None:
    assert parse_window(text) is None


def test_a_rule_may_use_cels_list_macros_and_mention_household_in_a_string(
    tmp_path: Path,
) -> None:
    """docs/policy-language.md §12: 'when' is CEL as in §3, which teaches exists(); a macro's
    own variable is no unknown name, and a string's text is no household field."""
    rules = [
        {"id": "police-two", "title": "Two contacts, one from the police", "window": "30d",
         "when": "contacts >= 2 && types.exists(t, t.startsWith('police.'))"},
        {"id": "da", "title": "Domestic abuse", "window": "30d",
         "when": "categories.exists(c, c == 'domestic_abuse') && senders.all(s, s != 'x')"},
        {"id": "text", "title": "A category named oddly", "window": "1d",
         "when": "'household.kids' in categories"},
    ]  # fmt: skip
    police, da, text = load_bundle(_bundle(tmp_path / "b", rules)).flag_rules
    agg = {"contacts": 2, "distinct_agencies": 1, "max_need": 2, "senders": ["wmp"],
           "categories": ["domestic_abuse"], "types": ["police.child_concern"]}  # fmt: skip
    assert police.holds(agg)
    assert not police.holds({**agg, "types": ["health.ae_attendance"]})
    assert da.holds(agg)
    assert not text.household
    assert _problems(_bundle(tmp_path / "c", [{**rules[0], "when": "t > 1"}])) != []


def test_a_rule_may_negate_a_number(tmp_path: Path) -> None:
    """Unary minus is CEL's operator '-_', not an unknown function."""
    rules = [{"id": "neg", "title": "Negated", "window": "1d", "when": "-max_need <= -4"}]
    (neg,) = load_bundle(_bundle(tmp_path / "b", rules)).flag_rules
    agg = {"contacts": 1, "distinct_agencies": 1, "max_need": 4, "senders": ["wmp"],
           "categories": [], "types": ["police.child_concern"]}  # fmt: skip
    assert neg.holds(agg)
    assert not neg.holds({**agg, "max_need": 3})
