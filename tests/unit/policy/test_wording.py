"""Bundle and scenario problems in plain words, not pydantic's (an IG officer reads them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.errors import BundleInvalid, ScenarioInvalid
from broker.policy import load_bundle, load_scenarios
from tests.unit.policy.kit import default_agreements, write_bundle


def _problems(tmp_path: Path, change: Any) -> list[str]:
    agreements = default_agreements()
    change(agreements[0])
    with pytest.raises(BundleInvalid) as info:
        load_bundle(write_bundle(tmp_path / "b", agreements=agreements))
    return [p.split(": ", 1)[1] for p in info.value.problems]


def _set(key: str, value: Any) -> Any:
    return lambda a: a["clauses"][0].__setitem__(key, value)


def test_a_hyphenated_purpose_is_told_its_spelling(tmp_path: Path) -> None:
    assert _problems(tmp_path, _set("purpose", "early-help")) == [
        "clauses[0].purpose: must be lower-case letters, digits and _ (early_help, not early-help)"
    ]


def test_a_purpose_no_spelling_fits_is_told_the_rule(tmp_path: Path) -> None:
    (problem,) = _problems(tmp_path, _set("purpose", "3 help!"))
    assert problem == (
        "clauses[0].purpose: must be lower-case letters, digits and _, starting with a letter, "
        "at most 64 (early_help, not early-help)"
    )


def test_a_value_outside_a_list_of_choices_names_the_choices(tmp_path: Path) -> None:
    assert _problems(tmp_path, lambda a: a.__setitem__("status", "signed")) == [
        "status: must be one of draft, approved, suspended"
    ]


def test_a_missing_key_is_required(tmp_path: Path) -> None:
    assert _problems(tmp_path, lambda a: a["clauses"][0].pop("share")) == [
        "clauses[0].share: is required"
    ]


def test_an_unknown_key_near_a_field_is_suggested_by_its_spelling_in_the_file(
    tmp_path: Path,
) -> None:
    """'from' is the file's key (the model's field is from_)."""

    def misspell(a: dict[str, Any]) -> None:
        a["clauses"][0]["form"] = a["clauses"][0].pop("from")

    assert _problems(tmp_path, misspell) == [
        "clauses[0].from: is required",
        "clauses[0].form: unknown key; did you mean 'from'?",
    ]


def test_an_unknown_key_near_nothing_is_just_unknown(tmp_path: Path) -> None:
    assert _problems(tmp_path, _set("colour", "red")) == ["clauses[0].colour: unknown key"]


def test_a_flag_rule_id_out_of_its_spelling_is_told_the_rule(tmp_path: Path) -> None:
    root = write_bundle(tmp_path / "b")
    rule = {"id": "DA Repeat", "title": "t", "window": "30d", "when": "contacts >= 2"}
    (root / "flags.yaml").write_text(yaml.safe_dump({"flags": [rule]}))
    with pytest.raises(BundleInvalid) as info:
        load_bundle(root)
    assert [p.split(": ", 1)[1] for p in info.value.problems] == [
        "flags[0].id: must be lower-case letters, digits, _ and -, starting with a letter or "
        "digit, at most 64 (da-repeat)"
    ]


def _scenario(tmp_path: Path, expectation: str) -> str:
    path = tmp_path / "s.yaml"
    path.write_text(
        f"name: x\nat: 2026-11-22T08:00:00Z\nevent: {{}}\nexpect: {{cog-tipton: {expectation}}}\n"
    )
    with pytest.raises(ScenarioInvalid) as info:
        load_scenarios(path)
    return str(info.value).split(": 'x': ", 1)[1]


@pytest.mark.parametrize(
    ("expectation", "said"),
    [
        ("{reason: no_clause}", "expect.cog-tipton.outcome: is required"),
        ("{outcome: shared, exclud: [subject.dob]}",
         "expect.cog-tipton.exclud: unknown key; did you mean 'exclude'?"),
        ("{outcome: maybe}",
         "expect.cog-tipton.outcome: must be one of shared, shared_override, not_shared"),
    ],
)  # fmt: skip
def test_a_scenario_expectation_is_faulted_in_plain_words(
    tmp_path: Path, expectation: str, said: str
) -> None:
    assert _scenario(tmp_path, expectation).startswith(said)
