"""Loading bundles: shapes, every problem with file and line, the version hash."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from broker.errors import BundleInvalid
from broker.policy import Bundle, Party, Policy, load_bundle
from tests.unit.policy.kit import (
    PARTIES,
    TO_HUB,
    agreement,
    default_agreements,
    default_restrictions,
    write_bundle,
)


def _problems(root: Path) -> list[str]:
    with pytest.raises(BundleInvalid) as info:
        load_bundle(root)
    return info.value.problems


def test_the_kit_bundle_loads_and_counts(tmp_path: Path) -> None:
    policy = load_bundle(write_bundle(tmp_path / "b"))
    assert policy.counts == (len(PARTIES), 2, 4)
    assert policy.version.startswith("sha256:")
    assert "11 parties, 2 agreements, 4 clauses, 2 restrictions" in policy.summary()


def test_the_version_ignores_formatting_comments_and_file_order(tmp_path: Path) -> None:
    a = load_bundle(write_bundle(tmp_path / "a"))
    root = write_bundle(tmp_path / "b", agreements=list(reversed(default_agreements())))
    parties = root / "parties.yaml"
    parties.write_text("# a comment\n" + parties.read_text().replace("  ", "    "))
    b = load_bundle(root)
    assert a.version == b.version


def test_the_version_changes_when_a_rule_changes(tmp_path: Path) -> None:
    a = load_bundle(write_bundle(tmp_path / "a"))
    agreements = default_agreements()
    agreements[0]["clauses"][0]["when"] = "event.need_level >= 3"
    b = load_bundle(write_bundle(tmp_path / "b", agreements=agreements))
    assert a.version != b.version


def test_every_problem_is_reported_with_file_and_line(tmp_path: Path) -> None:
    agreements = default_agreements()
    agreements[0]["clauses"][0]["share"].append("subject.shoe_size")
    agreements[1]["clauses"][0]["to"] = ["school:nearby"]
    problems = _problems(write_bundle(tmp_path / "b", agreements=agreements))
    assert len(problems) == 2
    assert any(
        p.startswith("agreements/early-help.yaml:") and "subject.shoe_size" in p for p in problems
    )
    assert any(
        p.startswith("agreements/encompass.yaml:") and "unknown selector" in p for p in problems
    )
    for p in problems:
        line = p.split(":")[1]
        assert line.isdigit()
        assert int(line) > 1


def test_the_line_points_at_the_offending_entry(tmp_path: Path) -> None:
    root = write_bundle(tmp_path / "b")
    path = root / "agreements" / "encompass.yaml"
    text = path.read_text().replace("- subject.dob", "- subject.dobb")
    path.write_text(text)
    (problem,) = _problems(root)
    line = int(problem.split(":")[1])
    assert "subject.dobb" in text.splitlines()[line - 1]


def test_missing_parties_file(tmp_path: Path) -> None:
    root = write_bundle(tmp_path / "b")
    (root / "parties.yaml").unlink()
    problems = _problems(root)
    assert any(p.startswith("parties.yaml: missing") for p in problems)


def test_a_party_that_fails_its_own_check_does_not_cascade(tmp_path: Path) -> None:
    parties = copy.deepcopy(PARTIES)
    parties["coord"]["kind"] = "team"
    problems = _problems(write_bundle(tmp_path / "b", parties=parties))
    assert len(problems) == 1
    assert "parties.coord.kind" in problems[0]


def test_duplicate_yaml_keys_are_refused(tmp_path: Path) -> None:
    root = write_bundle(tmp_path / "b")
    path = root / "parties.yaml"
    path.write_text(path.read_text() + "  wmp:\n    name: Again\n    kind: agency\n")
    problems = _problems(root)
    assert any("parties.wmp: duplicate key" in p for p in problems)


def test_an_empty_bundle_folder_is_reported_not_crashed(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert _problems(tmp_path / "empty")


def test_not_a_folder(tmp_path: Path) -> None:
    assert "not a policy bundle folder" in _problems(tmp_path / "nope")[0]


def test_bundles_built_in_code_are_checked_too() -> None:
    clause = copy.deepcopy(TO_HUB)
    clause["from"] = ["ghost"]
    bundle = Bundle.model_validate(
        {
            "parties": {pid: Party(id=pid, **body) for pid, body in PARTIES.items()},
            "agreements": [agreement("a", [clause])],
        }
    )
    with pytest.raises(BundleInvalid) as info:
        Policy(bundle)
    assert info.value.problems == ["agreement[0]: clauses[0].from[0]: unknown party 'ghost'"]


def test_a_bundle_file_spelt_yml_is_read_and_both_spellings_are_refused(tmp_path: Path) -> None:
    """As agreements may be: a restrictions.yml left out would drop its suppressions."""
    root = write_bundle(tmp_path / "b")
    (root / "restrictions.yaml").rename(root / "restrictions.yml")
    assert load_bundle(root).summary() == load_bundle(write_bundle(tmp_path / "a")).summary()
    (root / "restrictions.yaml").write_text("restrictions: []\n")
    problems = _problems(root)
    assert "restrictions.yaml and restrictions.yml: both exist; keep one" in problems


def test_a_date_yaml_cannot_build_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    agreement_file = next((write_bundle(tmp_path / "b") / "agreements").glob("*.yaml"))
    agreement_file.write_text(agreement_file.read_text() + "valid_until: 2026-02-30\n")
    [problem] = _problems(tmp_path / "b")
    assert problem.endswith(
        "a value YAML cannot read: day is out of range for month; "
        "fix this first: the file was not checked further"
    )


def test_a_date_yaml_cannot_build_is_placed_by_file_line_and_key(tmp_path: Path) -> None:
    """As every other problem is (docs/policy-language.md §9), not by file alone."""
    root = write_bundle(tmp_path / "b")
    path = root / "agreements" / "encompass.yaml"
    text = path.read_text().replace("valid_until: '2028-03-31'", "valid_until: 2028-04-31")
    path.write_text(text)
    line = text.splitlines().index("valid_until: 2028-04-31") + 1
    assert _problems(root) == [
        f"agreements/encompass.yaml:{line}: valid_until: a value YAML cannot read: "
        "day is out of range for month; fix this first: the file was not checked further"
    ]


@pytest.mark.parametrize(
    ("when", "found"),
    [
        ("true", "a YAML boolean (true, yes, on, false, no, off)"),
        ("yes", "a YAML boolean (true, yes, on, false, no, off)"),
        ('""', "an empty text"),
        ("' '", "an empty text"),
        ("null", "nothing"),
        ("", "nothing"),
        ("3", "a number"),
    ],
)
def test_a_when_that_is_not_cel_text_is_one_problem_saying_so(
    tmp_path: Path, when: str, found: str
) -> None:
    """when: true was 'not a valid string' plus 'clauses: at least 1 item'; when: null (or a
    bare when:) dropped the condition and shared unconditionally."""
    root = write_bundle(tmp_path / "b")
    path = root / "agreements" / "encompass.yaml"
    path.write_text(path.read_text().replace("when: event.child_present", f"when: {when}"))
    line = _line(path, "when:")
    assert _problems(root) == [
        f"agreements/encompass.yaml:{line}: clauses[0].when: must be a CEL expression in "
        f'quotes, e.g. "event.need_level >= 3"; found {found}'
    ]


def test_a_restriction_when_left_empty_is_refused(tmp_path: Path) -> None:
    root = write_bundle(tmp_path / "b")
    path = root / "restrictions.yaml"
    path.write_text(path.read_text().replace("when: '''refuge'' in event.categories'", "when:"))
    (problem,) = _problems(root)
    assert "restrictions[1].when: must be a CEL expression in quotes" in problem


def test_a_lone_clause_with_a_fault_does_not_also_blame_the_clause_list(tmp_path: Path) -> None:
    root = write_bundle(tmp_path / "b")
    path = root / "agreements" / "encompass.yaml"
    path.write_text(path.read_text().replace("purpose: safeguarding", "purpose: Safeguarding!"))
    (problem,) = _problems(root)
    assert "clauses[0].purpose" in problem


def test_an_empty_clause_list_is_still_refused(tmp_path: Path) -> None:
    root = write_bundle(tmp_path / "b", agreements=[agreement("a", [])])
    (problem,) = _problems(root)
    assert problem.endswith("clauses: must have at least 1 item")


def _line(path: Path, fragment: str) -> int:
    return next(i for i, ln in enumerate(path.read_text().splitlines(), 1) if fragment in ln)


@pytest.mark.parametrize("pid", ["worker", "console", "indexer", "admin", "governance", "accord",
                                 "accord-audit"])  # fmt: skip
def test_a_party_named_after_one_of_accords_own_services_is_refused(
    tmp_path: Path, pid: str
) -> None:
    """Its Kafka login would be the service's, with the service's grants (a hub named
    'worker' could read every agency's ingress); 'accord.' would cover every desk's groups."""
    parties = {**copy.deepcopy(PARTIES), pid: {"name": "Someone", "kind": "hub",
                                               "localities": ["DY4"]}}  # fmt: skip
    problems = _problems(write_bundle(tmp_path / "b", parties=parties))
    assert [p for p in problems if "reserved" in p] == [
        f"parties.yaml:{_line_of(tmp_path / 'b' / 'parties.yaml', pid)}: parties.{pid}: "
        f"party id {pid!r} is reserved for Accord's own services"
    ]


def _line_of(path: Path, key: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1)
                if line.strip().startswith(f"{key}:"))  # fmt: skip


def test_problems_are_listed_by_file_then_line_whatever_check_found_them(
    tmp_path: Path,
) -> None:
    """restrictions[1]'s unknown key is found when the file is read, restrictions[0]'s CEL
    later, parties.yaml's before any agreement: listed down each file, files in order."""
    restrictions = default_restrictions()
    restrictions[0]["when"] = "event.servise == 'x'"
    restrictions[1]["colour"] = "red"
    parties = copy.deepcopy(PARTIES)
    parties["wmp"]["kind"] = "police"
    agreements = default_agreements()
    agreements[1]["clauses"][0]["to"] = ["school:nearby"]
    root = write_bundle(
        tmp_path / "b", parties=parties, agreements=agreements, restrictions=restrictions
    )
    problems = _problems(root)
    assert [p.split(":")[0] for p in problems] == [
        "agreements/encompass.yaml", "parties.yaml", "restrictions.yaml", "restrictions.yaml"
    ]  # fmt: skip
    assert "restrictions[0].when" in problems[2]
    assert "restrictions[1].colour" in problems[3]
    assert int(problems[2].split(":")[1]) < int(problems[3].split(":")[1])


def test_an_unreadable_parties_file_is_the_first_problem_and_no_party_is_called_unknown(
    tmp_path: Path,
) -> None:
    """The first problem is what the one-line summary names (the worker's reload warning,
    policy test/impact): the cause, not an agreement's knock-on 'unknown party'."""
    agreements = default_agreements()
    agreements[0]["status"] = "signed"  # a real problem elsewhere is still listed
    root = write_bundle(tmp_path / "b", agreements=agreements)
    (root / "parties.yaml").write_text("parties:\n  wmp: [unclosed\n")
    with pytest.raises(BundleInvalid) as info:
        load_bundle(root)
    problems = info.value.problems
    assert problems[0].startswith("parties.yaml:3: not valid YAML: ")
    assert problems[0].endswith("; fix this first: the file was not checked further")
    assert str(info.value).startswith(f"{len(problems)} problems: parties.yaml:3: ")
    assert [p for p in problems if "unknown party" in p] == []
    assert len(problems) == 2
    assert problems[1].endswith("status: must be one of draft, approved, suspended")


@pytest.mark.parametrize(
    ("parties_yaml", "first"),
    [
        (None, "parties.yaml: missing (a bundle needs its parties)"),
        ("- wmp\n", "parties.yaml:1: expected a mapping 'parties:' of party id → party"),
    ],
)
def test_parties_not_read_are_listed_first_as_a_file_that_cannot_be_read_is(
    tmp_path: Path, parties_yaml: str | None, first: str
) -> None:
    """They silence the unknown-party checks, so they, not an agreement's problem (sorted
    before parties.yaml by name), are what the one-line summary names."""
    agreements = default_agreements()
    agreements[0]["status"] = "signed"
    root = write_bundle(tmp_path / "b", agreements=agreements)
    if parties_yaml is None:
        (root / "parties.yaml").unlink()
    else:
        (root / "parties.yaml").write_text(parties_yaml)
    problems = _problems(root)
    assert problems[0] == first
    assert len(problems) == 2
    assert problems[1].endswith("status: must be one of draft, approved, suspended")


def test_a_file_that_cannot_be_read_is_to_be_fixed_first_and_listed_first(
    tmp_path: Path,
) -> None:
    agreements = default_agreements()
    agreements[0]["clauses"][0]["share"].append("subject.shoe_size")
    root = write_bundle(tmp_path / "b", agreements=agreements)
    (root / "agreements" / "zz-gone.yaml").symlink_to(tmp_path / "nowhere.yaml")
    problems = _problems(root)
    assert problems[0] == (
        "agreements/zz-gone.yaml: cannot be read (FileNotFoundError); "
        "fix this first: the file was not checked further"
    )
    assert len(problems) == 2
    assert "subject.shoe_size" in problems[1]


def test_a_misspelt_name_is_answered_with_the_one_it_likely_mistypes(tmp_path: Path) -> None:
    """Parties, event types, field paths, lawful bases and fixed choices get a "did you mean":
    a policy author's usual mistake is a typo, and the lists are too long to print."""
    agreements = default_agreements()
    clause = agreements[0]["clauses"][0]
    clause["from"] = ["wmpp"]
    clause["to"] = ["cord"]
    clause["event_types"] = ["police.domestic_incidnt"]
    clause["share"] = ["subject.postcod"]
    clause["lawful_basis"]["article6"] = "public_tsk"
    problems = _problems(write_bundle(tmp_path / "b", agreements=agreements))
    for wrong, meant in (
        ("unknown party 'wmpp'", "'wmp'"),
        ("unknown party 'cord'", "'coord'"),
        ("unknown event type 'police.domestic_incidnt'", "'police.domestic_incident'"),
        ("unknown field path 'subject.postcod'", "'subject.postcode'"),
        ("unknown article6 basis 'public_tsk'", "'public_task'"),
    ):
        assert any(p.endswith(f"{wrong}; did you mean {meant}?") for p in problems), wrong
    agreements = default_agreements()
    agreements[0]["clauses"][0]["consent"] = "not_requried"
    problems = _problems(write_bundle(tmp_path / "c", agreements=agreements))
    assert problems[0].endswith(
        "consent: must be one of not_required, required, required_unless_safeguarding; "
        "did you mean not_required?"
    )


def test_a_name_far_from_every_known_one_gets_no_guess(tmp_path: Path) -> None:
    agreements = default_agreements()
    agreements[0]["clauses"][0]["from"] = ["zzzzzz"]
    problems = _problems(write_bundle(tmp_path / "b", agreements=agreements))
    assert any(p.endswith("unknown party 'zzzzzz'") for p in problems)


def test_a_misspelt_choice_does_not_hide_the_clauses_other_problems(tmp_path: Path) -> None:
    """A shape problem (bad consent, bad status, an unknown key) used to stop every check of
    its file: the clause's unknown party and its condition's unknown field now show with it."""
    agreements = default_agreements()
    agreements[0]["clauses"][0] |= {
        "consent": "not_requried",
        "from": ["wmpp"],
        "when": "event.need_levl >= 2",
        "subjcts": ["child"],
    }
    agreements[1]["status"] = "aproved"
    agreements[1]["clauses"][0]["share"] = ["subject.nam"]
    problems = _problems(write_bundle(tmp_path / "b", agreements=agreements))
    early = [p.split(": ", 1)[1] for p in problems if p.startswith("agreements/early-help")]
    assert early == [
        "clauses[0].from[0]: unknown party 'wmpp'; did you mean 'wmp'?",
        "clauses[0].consent: must be one of not_required, required, "
        "required_unless_safeguarding; did you mean not_required?",
        "clauses[0].when: agreement 'early-help', clause 'police-to-coord': "
        "CEL refers to unknown field event.need_levl",
        "clauses[0].subjcts: unknown key; did you mean 'subjects'?",
    ]
    assert any(
        p.endswith(
            "clauses[0].share[0]: unknown field path 'subject.nam'; did you mean 'subject.name'?"
        )
        for p in problems
    )
    assert any(
        p.endswith("status: must be one of draft, approved, suspended; did you mean approved?")
        for p in problems
    )


def test_a_clause_failing_where_no_stand_in_is_safe_is_not_checked_further(
    tmp_path: Path,
) -> None:
    """A ``share`` that is not a list cannot be put right without inventing problems (a
    transform of a field not shared): its clause's other checks wait, as before."""
    agreements = default_agreements()
    agreements[0]["clauses"][0] |= {"share": "subject.name", "from": ["wmpp"]}
    problems = _problems(write_bundle(tmp_path / "b", agreements=agreements))
    assert [p for p in problems if "wmpp" in p] == []
    assert any("clauses[0].share" in p for p in problems)


def test_an_unknown_key_inside_a_field_does_not_hide_the_clauses_other_problems(
    tmp_path: Path,
) -> None:
    """lawful_basis.articel10 was popped as if it were the clause's own key, taking the
    required lawful_basis with it, so the clause was not checked further (review r45b)."""
    agreements = default_agreements()
    clause = agreements[0]["clauses"][0]
    clause["lawful_basis"] = {"article6": "public_task", "articel10": "x"}
    clause["from"] = ["wmpp"]
    problems = _problems(write_bundle(tmp_path / "b", agreements=agreements))
    assert any(p.endswith("lawful_basis.articel10: unknown key; did you mean 'article10'?")
               for p in problems), problems  # fmt: skip
    assert any(p.endswith("unknown party 'wmpp'; did you mean 'wmp'?") for p in problems)


def test_a_transform_keyed_like_a_type_is_not_taken_for_versions_two_branches(
    tmp_path: Path,
) -> None:
    agreements = default_agreements()
    agreements[0]["clauses"][0]["transform"] = {"str": 5}
    problems = _problems(write_bundle(tmp_path / "b", agreements=agreements))
    assert not any("number or text" in p for p in problems), problems
