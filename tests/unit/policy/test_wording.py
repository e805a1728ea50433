"""Bundle and scenario problems in plain words, not pydantic's (an IG officer reads them)."""

from __future__ import annotations

import copy
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.errors import BundleInvalid, ScenarioInvalid
from broker.policy import load_bundle, load_scenarios
from tests.unit.policy.kit import PARTIES, default_agreements, default_restrictions, write_bundle


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
        "clauses[0].purpose: must be lower-case letters, digits and _: early_help?"
    ]


@pytest.mark.parametrize("value", ["early\nhelp", "Early\n\n\n  Help", "early help\n"])
def test_a_purpose_over_lines_is_told_its_spelling_on_one_line_not_echoed(
    tmp_path: Path, value: str
) -> None:
    assert _problems(tmp_path, _set("purpose", value)) == [
        "clauses[0].purpose: must be lower-case letters, digits and _: early_help?"
    ]


def test_no_problem_quotes_a_value_from_the_bundle_but_a_purposes_spelling(
    tmp_path: Path,
) -> None:
    """Pydantic is asked for the values (for the purpose's spelling): none reaches a message
    otherwise, whichever file or field it is in."""
    bad = "Qqq\nZzz!"
    agreements = default_agreements()
    first = agreements[0]
    first.update(status=bad, version=[bad], valid_from=bad, title=[bad])
    clauses = first["clauses"]
    clauses[0].update(purpose=bad, consent=bad, subjects=bad)
    clauses[1].update(lawful_basis=bad, when=[bad], purpose="Qqq Zzz")
    clauses[2]["lawful_basis"]["article6"] = [bad]
    parties = copy.deepcopy(PARTIES)
    parties["wmp"].update(kind=bad, status=bad, localities=bad, urn=[bad])
    restrictions = default_restrictions()
    restrictions[0].update(withhold=bad, except_kinds=bad, when=[bad])
    root = write_bundle(
        tmp_path / "b", parties=parties, agreements=agreements, restrictions=restrictions
    )
    (root / "flags.yaml").write_text(
        yaml.safe_dump({"flags": [{"id": bad, "title": [bad], "window": [bad], "when": bad}]})
    )
    (root / "consent-authorities.yaml").write_text(
        yaml.safe_dump({"consent_authorities": {"coord": {"purposes": [bad], "recipients": bad}}})
    )
    with pytest.raises(BundleInvalid) as info:
        load_bundle(root)
    problems = info.value.problems
    assert len(problems) >= 20
    assert [p for p in problems if "Qqq" in p or "Zzz" in p or "\n" in p] == []
    # The one value said, as the spelling that would do.
    assert [p for p in problems if "qqq" in p] == [
        f"{_place(problems, 'clauses[1].purpose')}: must be lower-case letters, digits and _: "
        "qqq_zzz?"
    ]


def _place(problems: list[str], path: str) -> str:
    (problem,) = (p for p in problems if f": {path}: " in p)
    return problem.split(f": {path}: ")[0] + f": {path}"


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
        ("{outcome: shared, 5: x}",
         "expect.cog-tipton.5: keys here must be text: put the key in quotes"),
    ],
)  # fmt: skip
def test_a_scenario_expectation_is_faulted_in_plain_words(
    tmp_path: Path, expectation: str, said: str
) -> None:
    assert _scenario(tmp_path, expectation).startswith(said)


def test_a_party_key_near_id_is_not_told_id_which_a_party_may_not_spell(tmp_path: Path) -> None:
    """A party's id is its mapping key in parties.yaml; 'name' is still suggested."""
    parties = copy.deepcopy(PARTIES)
    parties["wmp"]["idd"] = "x"
    parties["swbh"]["nmae"] = parties["swbh"].pop("name")
    with pytest.raises(BundleInvalid) as info:
        load_bundle(write_bundle(tmp_path / "b", parties=parties))
    assert [p.split(": ", 1)[1] for p in info.value.problems] == [
        "parties.wmp.idd: unknown key",
        "parties.swbh.name: is required",
        "parties.swbh.nmae: unknown key; did you mean 'name'?",
    ]


REPO = Path(__file__).resolve().parents[3]


def test_the_docs_example_of_worded_problems_is_what_the_check_says(tmp_path: Path) -> None:
    """docs/policy-language.md §9's example, from the project's Sandwell agreement with a
    status out of its choices, clause 0's from spelt form and a hyphenated purpose, and
    clause 1's share left out: all of its lines, as written."""
    doc = (REPO / "docs" / "policy-language.md").read_text()
    block = doc.split("No other value is\nquoted from the file", 1)[1].split("```\n")[1]
    source = REPO / "policies" / "agreements" / "sandwell-early-help.yaml"
    text = source.read_text()
    data = yaml.safe_load(text)
    first, second = data["clauses"][:2]
    # Edited as text, so that the file keeps its lines (the doc's line numbers).
    edited = text.replace("status: approved", "status: signed", 1)
    edited = edited.replace("    from: ", "    form: ", 1)
    edited = edited.replace(f"    purpose: {first['purpose']}", "    purpose: early-help", 1)
    edited = _without_share(edited, 1)
    data["status"] = "signed"
    first["form"] = first.pop("from")
    first["purpose"] = "early-help"
    del second["share"]
    assert yaml.safe_load(edited) == data  # the edits are the ones meant
    root = tmp_path / "b"
    shutil.copytree(REPO / "policies", root)
    (root / "agreements" / "sandwell-early-help.yaml").write_text(edited)
    with pytest.raises(BundleInvalid) as info:
        load_bundle(root)
    assert info.value.problems == block.splitlines()


def _without_share(text: str, clause: int) -> str:
    """``text`` without the share list (its key line and continued lines) of ``clause``."""
    lines = text.splitlines(keepends=True)
    start = [i for i, line in enumerate(lines) if line.strip().startswith("share:")][clause]
    end = start + 1
    while lines[end].startswith(" " * 8) and not lines[end].strip().endswith(":"):
        end += 1
    return "".join(lines[:start] + lines[end:])


def test_a_value_of_the_wrong_type_is_said_in_yamls_words_not_pythons(tmp_path: Path) -> None:
    """'Input should be a valid tuple' and 'instance of LawfulBasis' spoke Python to a policy
    author; an int | str field failed twice, once per branch."""

    def wrong(a: dict[str, Any]) -> None:
        a["version"] = [1]
        a["valid_from"] = "soon"
        a["clauses"][0] |= {"share": "subject.name", "lawful_basis": "public_task"}

    assert _problems(tmp_path, wrong) == [
        "version: must be a number or text (2, or 2026-v2)",
        "valid_from: must be a date, year first (2026-04-01)",
        "clauses[0].lawful_basis: must be a mapping: {key: value}, or one 'key: value' per line",
        "clauses[0].share: must be a list: [a, b], or one '- item' per line",
    ]


def _restriction_problems(tmp_path: Path, withhold: Any) -> list[str]:
    restrictions = default_restrictions()
    restrictions[0]["withhold"] = withhold
    with pytest.raises(BundleInvalid) as info:
        load_bundle(write_bundle(tmp_path / "b", restrictions=restrictions))
    return info.value.problems


@pytest.mark.parametrize("withhold", [5, "none", "al", {"a": 1}])
def test_withhold_neither_all_nor_a_list_is_one_problem_in_yamls_words(
    tmp_path: Path, withhold: Any
) -> None:
    """'withhold: 5' was two problems, one per branch of all | [fields]: "must be one of all"
    and "must be a list"."""
    assert _restriction_problems(tmp_path, withhold) == [
        "restrictions.yaml:4: restrictions[0].withhold: must be all, or a list: [a, b], or one "
        "'- item' per line"
    ]


def test_withhold_a_list_with_a_bad_item_is_told_of_the_item_not_all(tmp_path: Path) -> None:
    assert _restriction_problems(tmp_path, ["subject.address", 5]) == [
        "restrictions.yaml:6: restrictions[0].withhold[1]: must be text"
    ]


@pytest.mark.parametrize(
    ("key", "spelt"),
    [(123, "123"), (True, "true"), (None, "null"), (1.5, "1.5"), (date(2026, 1, 1), "2026-01-01")],
)
def test_a_key_yaml_reads_as_other_than_text_is_told_to_be_quoted(
    tmp_path: Path, key: Any, spelt: str
) -> None:
    """pydantic said "Keys should be strings" (a clause's key), or of a transform's key
    "Input should be a valid string" as if its value were wrong, at a place of its own
    (true was [1])."""
    said = f"keys here must be text; write '{spelt}' in quotes"
    assert _problems(tmp_path, _set(key, "x")) == [f"clauses[0].{spelt}: {said}"]
    assert _problems(tmp_path, _set("transform", {key: "subject.name"})) == [
        f"clauses[0].transform.{spelt}: {said}"
    ]


def test_a_key_that_is_not_text_is_told_at_its_own_line_as_the_file_spells_it(
    tmp_path: Path,
) -> None:
    root = write_bundle(tmp_path / "b")
    text = (root / "restrictions.yaml").read_text()
    assert text.splitlines()[3] == "  withhold: all"
    (root / "restrictions.yaml").write_text(
        text.replace("  withhold: all\n", "  withhold: all\n  0x1F: 3\n  yes: 2\n", 1)
    )
    with pytest.raises(BundleInvalid) as info:
        load_bundle(root)
    assert info.value.problems == [
        "restrictions.yaml:5: restrictions[0].0x1F: keys here must be text; write '0x1F' in quotes",
        "restrictions.yaml:6: restrictions[0].yes: keys here must be text; write 'yes' in quotes",
    ]
