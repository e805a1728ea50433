"""`accord policy check|explain|test`: summaries, every bundle problem by file, one-line errors."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from broker.policy import ARTICLE6_BASES, load_scenarios
from tests.unit.audit.conftest import Run
from tests.unit.policy.kit import (
    ENCOMPASS,
    PARTIES,
    agreement,
    default_agreements,
    default_restrictions,
    event_dict,
    subject,
    write_bundle,
)

REPO = Path(__file__).resolve().parents[3]
SHARED = REPO.parent / "shared" / "examples"


# -- check ---------------------------------------------------------------------------------


def test_check_a_sound_bundle_prints_one_summary_line(tmp_path: Path, run_cli: Run) -> None:
    agreements = default_agreements()
    for a in agreements:  # in force whatever today is: a lapsed one is warned of (its dates)
        a["valid_until"] = "2099-12-31"
    # The kit's hub clause takes police events on article6 alone, which is warned of.
    to_hub = next(c for a in agreements for c in a["clauses"] if c["id"] == "to-hub")
    to_hub["lawful_basis"]["article10"] = "explicit_consent"
    root = write_bundle(tmp_path / "b", agreements=agreements)
    code, out, err = run_cli(["policy", "check", str(root)])
    assert code == 0
    assert err == ""
    (line,) = out.strip().splitlines()
    assert line.startswith("ok: ")
    assert "11 parties, 2 agreements, 4 clauses" in line
    assert "version sha256:" in line


def test_check_prints_a_warning_on_stderr_and_still_passes_a_bundle_it_only_doubts(
    tmp_path: Path, run_cli: Run
) -> None:
    """A school:of-child clause without ``subjects`` sends the school the adults too: check
    says so on stderr, and the bundle is still ok (a warning never blocks)."""
    clause = copy.deepcopy(ENCOMPASS)
    del clause["subjects"]
    root = write_bundle(tmp_path / "b", agreements=[agreement("encompass", [clause])])
    code, out, err = run_cli(["policy", "check", str(root)])
    assert code == 0
    assert out.startswith("ok: ")
    (warning,) = err.strip().splitlines()
    assert warning.startswith("warning: ")
    assert "'encompass'" in warning
    assert "subjects" in warning


Mutation = Callable[[dict[str, Any]], None]


def _clause(b: dict[str, Any], i: int = 0) -> dict[str, Any]:
    clause: dict[str, Any] = b["agreements"][0]["clauses"][i]
    return clause


def _set(path: list[Any], value: Any) -> Mutation:
    def mutate(b: dict[str, Any]) -> None:
        target = b
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _dup_agreement(b: dict[str, Any]) -> None:
    twin = copy.deepcopy(b["agreements"][1])
    twin["id"] = "early-help"
    twin["title"] = "twin"
    b["agreements"].append(twin | {"_file": "twin"})


def _dup_clause(b: dict[str, Any]) -> None:
    _clause(b, 1)["id"] = _clause(b, 0)["id"]


def _dup_restriction(b: dict[str, Any]) -> None:
    b["restrictions"][1]["id"] = b["restrictions"][0]["id"]


def _no_key(key: str) -> Mutation:
    def mutate(b: dict[str, Any]) -> None:
        del _clause(b)[key]

    return mutate


EH, RS, PY = "agreements/early-help.yaml", "restrictions.yaml", "parties.yaml"
C0 = ["agreements", 0, "clauses", 0]
C1 = ["agreements", 0, "clauses", 1]
C2 = ["agreements", 0, "clauses", 2]

PROBLEMS: list[tuple[str, Mutation, str, str]] = [
    ("unknown-party-from", _set([*C0, "from"], ["wmpp"]), EH, "unknown party 'wmpp'"),
    ("unknown-party-to", _set([*C0, "to"], ["cord"]), EH, "unknown party 'cord'"),
    ("unknown-selector", _set([*C0, "to"], ["hub:nearby"]), EH, "unknown selector 'hub:nearby'"),
    (
        "unknown-field-path",
        _set([*C0, "share"], ["subject.name", "subject.shoe"]),
        EH,
        "unknown field path 'subject.shoe'",
    ),
    (
        "unknown-withhold-path",
        _set(["restrictions", 1, "withhold"], ["event.locaton"]),
        RS,
        "unknown field path 'event.locaton'",
    ),
    (
        "unknown-transform",
        _set([*C2, "transform"], {"subject.dob": "blur"}),
        EH,
        "unknown transform 'blur'",
    ),
    (
        "transform-wrong-field",
        _set([*C2, "transform"], {"subject.name": "age_band"}),
        EH,
        "does not apply to 'subject.name'",
    ),
    (
        "transform-unshared",
        _set([*C2, "transform"], {"subject.nhs_number": "pseudonym"}),
        EH,
        "which the clause does not share",
    ),
    (
        "unknown-article6",
        _set([*C0, "lawful_basis"], {"article6": "public_duty"}),
        EH,
        "unknown article6 basis 'public_duty'",
    ),
    (
        "unknown-article9",
        _set([*C1, "lawful_basis"], {"article6": "public_task", "article9": "health"}),
        EH,
        "unknown article9 condition 'health'",
    ),
    (
        "unknown-article10",
        _set([*C0, "lawful_basis"], {"article6": "public_task", "article10": "policing"}),
        EH,
        "unknown article10 condition 'policing'",
    ),
    (
        "consent-basis-not-required",
        _set([*C0, "lawful_basis"], {"article6": "consent"}),
        EH,
        "consent cannot be not_required",
    ),
    ("cel-syntax", _set([*C0, "when"], "event.need_level >="), EH, "CEL does not compile"),
    ("cel-unknown-name", _set([*C0, "when"], "evt.need_level > 1"), EH, "unknown name 'evt'"),
    (
        "cel-unknown-field",
        _set(["restrictions", 0, "when"], "event.servise == 'x'"),
        RS,
        "unknown field event.servise",
    ),
    (
        "cel-unknown-function",
        _set([*C0, "when"], "isUrgent(event)"),
        EH,
        "unknown function 'isUrgent'",
    ),
    (
        "cel-not-boolean",
        _set([*C0, "when"], "event.need_level"),
        EH,
        "does not evaluate to true or false",
    ),
    (
        "duplicate-agreement",
        _dup_agreement,
        "agreements/twin.yaml",
        f"duplicate agreement id 'early-help' (also {EH}:1: id)",
    ),
    ("duplicate-clause", _dup_clause, EH, "duplicate clause id 'police-to-coord'"),
    (
        "duplicate-restriction",
        _dup_restriction,
        RS,
        "duplicate restriction id 'sensitive-services'",
    ),
    (
        "dates-reversed",
        _set(["agreements", 0, "valid_from"], "2028-01-01"),
        EH,
        "valid_from is after valid_until",
    ),
    (
        "unknown-event-type",
        _set([*C0, "event_types"], ["police.burglary"]),
        EH,
        "unknown event type 'police.burglary'",
    ),
    ("unknown-role", _set([*C2, "subjects"], ["child", "uncle"]), EH, "unknown role 'uncle'"),
    (
        "unknown-except-kind",
        _set(["restrictions", 0, "except_kinds"], ["coordinating"]),
        RS,
        "unknown party kind 'coordinating'",
    ),
    ("unknown-key", _set([*C0, "whne"], "true"), EH, "whne: unknown key"),
    ("missing-key", _no_key("share"), EH, "share: is required"),
    (
        "bad-status",
        _set(["agreements", 0, "status"], "signed"),
        EH,
        "status: must be one of draft, approved, suspended",
    ),
    (
        "bad-locality",
        _set(["parties", "hub-tipton", "localities"], ["DY4 7AA"]),
        PY,
        "neither a postcode district",
    ),
    (
        "school-without-urn",
        _set(["parties", "school-a", "urn"], None),
        PY,
        "a school needs a six-digit urn",
    ),
    (
        "duplicate-urn",
        _set(["parties", "school-b", "urn"], "100001"),
        PY,
        "urn also used by party 'school-a'",
    ),
    ("bad-party-kind", _set(["parties", "coord", "kind"], "team"), PY, "parties.coord.kind"),
]


@pytest.mark.parametrize(
    ("mutate", "file", "fragment"), [p[1:] for p in PROBLEMS], ids=[p[0] for p in PROBLEMS]
)
def test_check_names_the_file_and_the_problem_and_exits_1(
    tmp_path: Path, run_cli: Run, mutate: Mutation, file: str, fragment: str
) -> None:
    spec: dict[str, Any] = {
        "parties": copy.deepcopy(PARTIES),
        "agreements": default_agreements(),
        "restrictions": default_restrictions(),
    }
    mutate(spec)
    twins = [a for a in spec["agreements"] if "_file" in a]
    spec["agreements"] = [a for a in spec["agreements"] if "_file" not in a]
    root = write_bundle(tmp_path / "b", **spec)
    for twin in twins:
        name = twin.pop("_file")
        import yaml  # only this branch writes an extra file

        (root / "agreements" / f"{name}.yaml").write_text(yaml.safe_dump(twin))
    code, out, err = run_cli(["policy", "check", str(root)])
    assert code == 1
    lines = out.strip().splitlines()
    assert any(line.startswith(f"{file}:") and fragment in line for line in lines), out
    err_lines = err.strip().splitlines()
    assert len(err_lines) == 1
    assert err_lines[0].startswith("accord: error:")
    assert "problem" in err_lines[0]


def test_check_reports_invalid_yaml_and_a_missing_parties_file(
    tmp_path: Path, run_cli: Run
) -> None:
    root = write_bundle(tmp_path / "b")
    (root / "agreements" / "broken.yaml").write_text("id: [unclosed\n")
    (root / PY).unlink()
    code, out, _ = run_cli(["policy", "check", str(root)])
    assert code == 1
    assert (
        "agreements/broken.yaml:2: not valid YAML" in out
        or "agreements/broken.yaml:1: not valid YAML" in out
    )
    assert "parties.yaml: missing" in out


def test_check_lists_every_problem_not_just_the_first(tmp_path: Path, run_cli: Run) -> None:
    agreements = default_agreements()
    agreements[0]["clauses"][0]["share"] = ["subject.x", "subject.y"]
    agreements[1]["clauses"][0]["to"] = ["nobody"]
    code, out, err = run_cli(
        ["policy", "check", str(write_bundle(tmp_path / "b", agreements=agreements))]
    )
    assert code == 1
    assert len(out.strip().splitlines()) == 3
    assert "3 problems" in err


# -- explain -------------------------------------------------------------------------------


def _event_file(tmp_path: Path, **over: Any) -> Path:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event_dict(**over)))
    return path


def test_explain_shows_a_row_per_recipient_and_each_view(tmp_path: Path, run_cli: Run) -> None:
    root = write_bundle(tmp_path / "b")
    argv = [
        "policy",
        "explain",
        str(_event_file(tmp_path)),
        "--policies",
        str(root),
        "--at",
        "2026-11-22T08:00:00Z",
    ]
    code, out, _ = run_cli(argv)
    assert code == 0
    for text in (
        "coord",
        "school-a",
        "hub-tipton",
        "consent-missing",
        "police-to-coord",
        # The basis in the words the desk and the disclosure log use, not as codes.
        "Art 6: legal obligation, Art 6(1)(c)",
    ):
        assert text in out
    assert "Art6" not in out
    assert "View for school-a:" in out
    assert "View for hub-tipton:" not in out


@pytest.mark.parametrize("suffix", [".jsonl", ".ndjson"])  # JSON lines, as publish reads them
def test_explain_json_is_machine_readable(suffix: str, tmp_path: Path, run_cli: Run) -> None:
    root = write_bundle(tmp_path / "b")
    consents = tmp_path / f"consents{suffix}"
    consents.write_text(
        json.dumps(
            {
                "subject": {"nhs_number": "9997877896"},
                "state": "given",
                "purposes": ["early_help"],
                "recipients": ["kind:hub"],
                "recorded_by": "coord",
                "recorded_at": "2026-10-01T09:00:00Z",
            }
        )
        + "\n"
    )
    argv = [
        "policy", "explain", str(_event_file(tmp_path)), "--policies", str(root),
        "--consents", str(consents), "--at", "2026-11-22T08:00:00Z", "--json",
    ]  # fmt: skip
    code, out, _ = run_cli(argv)
    assert code == 0
    doc = json.loads(out)
    outcomes = {d["recipient"]: d["outcome"] for d in doc["decisions"]}
    assert outcomes == {"coord": "shared", "hub-tipton": "shared", "school-a": "shared"}
    assert doc["views"]["hub-tipton"]["subjects"][0]["age_band"] == "5-10"
    assert doc["policy_version"].startswith("sha256:")
    assert {d["lawful_basis"]["article6"] for d in doc["decisions"]} <= set(ARTICLE6_BASES)


def test_explain_with_a_bad_nhs_number_is_one_line_naming_the_field(
    tmp_path: Path, run_cli: Run
) -> None:
    root = write_bundle(tmp_path / "b")
    path = _event_file(tmp_path, subjects=[subject("child", nhs_number="9997877897")])
    code, out, err = run_cli(
        ["policy", "explain", str(path), "--policies", str(root), "--at", "2026-11-22T08:00:00Z"],
    )
    assert code == 1
    assert out == ""
    (line,) = err.strip().splitlines()
    assert "subjects[0].nhs_number" in line
    assert "9997877897" not in line


@pytest.mark.parametrize("at", ["yesterday", "2026-11-22T08:00:00"])
def test_explain_with_a_bad_time_is_a_usage_error(tmp_path: Path, run_cli: Run, at: str) -> None:
    root = write_bundle(tmp_path / "b")
    code, _, err = run_cli(
        ["policy", "explain", str(_event_file(tmp_path)), "--policies", str(root), "--at", at],
    )
    assert code == 2
    assert len(err.strip().splitlines()) == 1


def test_explain_a_missing_event_file_is_one_line(tmp_path: Path, run_cli: Run) -> None:
    code, _, err = run_cli(
        ["policy", "explain", str(tmp_path / "none.json"), "--policies", str(tmp_path)]
    )
    assert code == 1
    assert len(err.strip().splitlines()) == 1


def test_explain_an_unrouted_event_says_so(tmp_path: Path, run_cli: Run) -> None:
    root = write_bundle(tmp_path / "b")
    path = _event_file(tmp_path, type="voluntary.concern")
    code, out, _ = run_cli(
        ["policy", "explain", str(path), "--policies", str(root), "--at", "2026-11-22T08:00:00Z"],
    )
    assert code == 0
    assert "No candidate recipients: no clause routes voluntary.concern from wmp." in out


def test_explain_an_event_routed_only_to_hubs_none_covers_names_the_clause_not_no_route(
    tmp_path: Path, run_cli: Run
) -> None:
    """A clause routes it, to hub:locality, and no hub covers the child's postcode: saying
    no clause routes it sends the officer to fix the wrong thing. The postcode is not shown."""
    root = write_bundle(tmp_path / "b")
    child = subject("child", postcode="B1 1AA", school_urn=None)
    path = _event_file(tmp_path, type="housing.eviction_risk", sender="housing",
                       subjects=[child])  # fmt: skip
    argv = ["policy", "explain", str(path), "--policies", str(root), "--at", "2026-11-22T08:00:00Z"]
    code, out, _ = run_cli(argv)
    assert code == 0
    assert out == (
        "No candidate recipients: early-help / to-hub routes housing.eviction_risk from "
        "housing only to hub:locality, but no hub's localities cover the postcode of any child "
        "in the event.\n"
    )
    code, out, _ = run_cli([*argv, "--json"])
    doc = json.loads(out)
    assert doc["decisions"] == []
    assert doc["no_candidates"].startswith("early-help / to-hub routes")
    assert "B1" not in doc["no_candidates"]


def test_explain_an_event_routed_only_to_schools_none_matches_says_so(
    tmp_path: Path, run_cli: Run
) -> None:
    root = write_bundle(tmp_path / "b", agreements=[agreement("encompass", [ENCOMPASS])])
    path = _event_file(tmp_path, subjects=[subject("child", school_urn="999999")])
    code, out, _ = run_cli(
        ["policy", "explain", str(path), "--policies", str(root), "--at", "2026-11-22T08:00:00Z"],
    )
    assert code == 0
    assert "encompass / encompass routes police.domestic_incident from wmp only to " in out
    assert "no school in the bundle has the URN of any child in the event." in out
    assert "999999" not in out


def test_explain_an_event_only_a_draft_routes_names_the_draft(tmp_path: Path, run_cli: Run) -> None:
    draft = agreement("encompass", [ENCOMPASS], status="draft")
    root = write_bundle(tmp_path / "b", agreements=[draft])
    code, out, _ = run_cli(
        ["policy", "explain", str(_event_file(tmp_path)), "--policies", str(root),
         "--at", "2026-11-22T08:00:00Z"],
    )  # fmt: skip
    assert code == 0
    assert out == (
        "No candidate recipients: no clause in force routes police.domestic_incident from wmp; "
        "encompass would, but is a draft, and a draft decides nothing.\n"
    )
    # Two drafts: named together, in the plural ('a, b would, but is a draft' before).
    second = agreement("encompass-2", [{**ENCOMPASS, "id": "encompass-2"}], status="draft")
    root = write_bundle(tmp_path / "c", agreements=[draft, second])
    code, out, _ = run_cli(
        ["policy", "explain", str(_event_file(tmp_path)), "--policies", str(root),
         "--at", "2026-11-22T08:00:00Z"],
    )  # fmt: skip
    assert (code, out) == (0, (
        "No candidate recipients: no clause in force routes police.domestic_incident from wmp; "
        "encompass-2 and encompass would, but are drafts, and a draft decides nothing.\n"
    ))  # fmt: skip


# -- test ----------------------------------------------------------------------------------

GOOD = """
name: school is told
policies: ../bundle
at: 2026-11-22T08:00:00Z
event: {event}
expect:
  school-a: {{outcome: shared, subjects: 1}}
  hub-tipton: {{outcome: {hub}, reason: consent-missing}}
"""


def _scenario(
    tmp_path: Path, name: str, hub: str = "not_shared", policies: str | None = "bundle"
) -> Path:
    write_bundle(tmp_path / "bundle")
    text = GOOD.format(event=json.dumps(event_dict()), hub=hub)
    if policies is None:
        text = text.replace("policies: ../bundle\n", "")
    path = tmp_path / "scenarios" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def test_test_passes_and_ends_with_the_count_line(tmp_path: Path, run_cli: Run) -> None:
    _scenario(tmp_path, "a.yaml")
    code, out, _ = run_cli(["policy", "test", str(tmp_path / "scenarios")])
    assert code == 0
    lines = out.strip().splitlines()
    # Which bundles, the default and then the one the scenario names: test_policy_test_bundle.py
    assert [line.split(",")[0] for line in lines[:2]] == [
        f"policy bundle {(REPO / 'policies').resolve()}",
        f"policy bundle {(tmp_path / 'bundle').resolve()}",
    ]
    assert lines[2].startswith("PASS school is told")
    assert lines[-1] == "1 passed, 0 failed"


def test_test_failure_shows_the_diff_and_exits_1(tmp_path: Path, run_cli: Run) -> None:
    good = _scenario(tmp_path, "a.yaml")
    _scenario(tmp_path, "b.yaml", hub="shared")
    bad_yaml = tmp_path / "scenarios" / "c.yaml"
    bad_yaml.write_text("name: [unclosed\n")
    code, out, _ = run_cli(["policy", "test", str(good), str(tmp_path / "scenarios")])
    assert code == 1
    assert "hub-tipton: outcome: expected shared, got not_shared (consent-missing)" in out
    assert "not valid YAML" in out
    assert out.strip().splitlines()[-1] == "2 passed, 2 failed"


def test_test_skips_a_walked_folders_other_yaml_and_says_so(tmp_path: Path, run_cli: Run) -> None:
    """An alerting rule or a CI file under the folder is not a failing "scenario"; a file that
    has a scenario's keys still fails on a mistake, and a file named directly is always read."""
    _scenario(tmp_path, "a.yaml")
    folder = tmp_path / "scenarios"
    (folder / "deploy").mkdir()
    alerts = folder / "deploy" / "alerts.yml"
    alerts.write_text("groups:\n- name: accord\n  rules: []\n")
    (folder / "ci.yaml").write_text("jobs: {test: {runs-on: x}}\n")
    (folder / "empty.yaml").write_text("")
    code, out, _ = run_cli(["policy", "test", str(folder)])
    assert code == 0, out
    lines = out.strip().splitlines()
    assert sorted(line for line in lines if line.startswith("SKIP")) == [
        f"SKIP {folder / 'ci.yaml'}: holds no scenario",
        f"SKIP {alerts}: holds no scenario",
        f"SKIP {folder / 'empty.yaml'}: holds no scenario",
    ]
    assert lines[-1] == "1 passed, 0 failed (3 YAML files with no scenario skipped)"
    code, out, err = run_cli(["policy", "test", str(alerts.parent)])
    assert code == 1  # only a file with no scenario: nothing ran, and stderr says so
    assert (
        out.strip().splitlines()[-1] == "0 passed, 0 failed (1 YAML file with no scenario skipped)"
    )
    [line] = err.strip().splitlines()
    assert line.startswith("accord: error: no scenario in the paths given")
    (folder / "typo.yaml").write_text("- name: a typo\n  evnet: {}\n")
    code, out, _ = run_cli(["policy", "test", str(folder)])
    assert code == 1
    assert "typo.yaml: scenario 1: unknown key(s) evnet" in out
    code, out, _ = run_cli(["policy", "test", str(alerts)])
    assert code == 1
    assert out.strip().splitlines()[1:] == [
        f"FAIL {alerts}: scenario 1: unknown key(s) groups",
        "0 passed, 1 failed",
    ]


def test_test_uses_the_policies_option_when_a_scenario_names_none(
    tmp_path: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    _scenario(tmp_path, "a.yaml", policies=None)
    code, out, _ = run_cli(
        ["policy", "test", str(tmp_path / "scenarios"), "--policies", str(tmp_path / "bundle")],
    )
    assert code == 0, out
    # Without --policies the project's policies/ (relative to where accord runs) is used.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bundle").rename(tmp_path / "policies")
    code, out, _ = run_cli(["policy", "test", "scenarios"])
    assert code == 0, out


def test_test_a_missing_path_is_a_usage_error(tmp_path: Path, run_cli: Run) -> None:
    code, _, err = run_cli(["policy", "test", str(tmp_path / "nope")])
    assert code == 2
    assert len(err.strip().splitlines()) == 1


def test_test_given_a_policy_bundle_says_where_its_scenarios_are(
    run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not twelve failures, one per bundle file read as a scenario: one line with the fix."""
    monkeypatch.chdir(REPO)
    code, out, err = run_cli(["policy", "test", "policies"])
    assert code == 2
    assert out == ""
    assert err.strip().splitlines() == [
        "accord: error: policies is a policy bundle, not scenarios; to run its scenarios under "
        "it: accord policy test policies/scenarios --policies policies"
    ]


def test_the_project_scenarios_pass_through_the_cli(
    run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As docs/policy-language.md shows it: from the repository, on the project's policies/.
    monkeypatch.chdir(REPO)
    code, out, _ = run_cli(["policy", "test", "policies/scenarios"])
    assert code == 0, out
    files = sorted((REPO / "policies" / "scenarios").glob("*.yaml"))
    total = sum(len(load_scenarios(f)) for f in files)
    assert total >= 30
    assert out.strip().splitlines()[-1] == f"{total} passed, 0 failed"


@pytest.mark.skipif(
    not (SHARED / "scenarios").is_dir(), reason=f"../shared is not beside this clone ({SHARED})"
)
def test_the_shared_example_scenarios_pass_through_the_cli(
    run_cli: Run,
) -> None:
    code, out, _ = run_cli(["policy", "test", str(SHARED / "scenarios")])
    assert code == 0, out
    assert out.strip().splitlines()[-1] == "13 passed, 0 failed"


@pytest.mark.skipif(
    not (SHARED / "policies").is_dir(), reason=f"../shared is not beside this clone ({SHARED})"
)
def test_check_accepts_the_shared_example_bundle(run_cli: Run) -> None:
    code, out, _ = run_cli(["policy", "check", str(SHARED / "policies")])
    assert code == 0
    assert "11 parties, 3 agreements, 5 clauses" in out


def test_a_scenario_file_that_is_not_utf8_is_one_line(tmp_path: Path, run_cli: Run) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"name: \xff\xfe\n")
    root = write_bundle(tmp_path / "b")
    code, out, err = run_cli(["policy", "test", str(bad), "--policies", str(root)])
    assert code == 1  # reported as a failing file, like any unreadable scenario
    assert f"FAIL {bad}: not UTF-8 text" in out
    assert "Traceback" not in out + err


@pytest.mark.parametrize("body", [b"\xff\xfe[]", b'[{"x": ' + b"9" * 5000 + b"}]"])
def test_explain_with_consents_that_cannot_be_read_is_one_line(
    body: bytes, tmp_path: Path, run_cli: Run
) -> None:
    consents = tmp_path / "c.jsonl"
    consents.write_bytes(body)
    root = write_bundle(tmp_path / "b")
    code, _, err = run_cli(["policy", "explain", str(_event_file(tmp_path)), "--consents",
                         str(consents), "--policies", str(root)])  # fmt: skip
    assert code == 2
    assert err.strip().splitlines() == [
        f"accord: error: --consents: {consents} is not JSON, JSON lines or YAML"
    ]


# -- explain: what the decisions alone do not show ------------------------------------------


def _explain(root: Path, event: Path, run_cli: Run, *extra: str) -> tuple[int, str, str]:
    argv = ["policy", "explain", str(event), "--policies", str(root),
            "--at", "2026-11-22T08:00:00Z", *extra]  # fmt: skip
    return run_cli(argv)


def test_explain_lists_the_consents_the_bundle_refuses_and_why(
    tmp_path: Path, run_cli: Run
) -> None:
    """A consent from a party that may not record one counted for nothing, unseen."""
    root = write_bundle(tmp_path / "b")
    consents = tmp_path / "consents.json"
    given = {"subject": {"nhs_number": "9997877896"}, "state": "given",
             "purposes": ["early_help"], "recipients": ["kind:hub"],
             "recorded_at": "2026-10-01T09:00:00Z"}  # fmt: skip
    consents.write_text(
        json.dumps([given | {"recorded_by": "coord"}, given | {"recorded_by": "hub-tipton"}])
    )
    event = _event_file(tmp_path)
    code, out, _ = _explain(root, event, run_cli, "--consents", str(consents))
    assert code == 0
    (line,) = [ln for ln in out.splitlines() if "refused" in ln]
    assert line == (
        "Consent 2 (recorded by hub-tipton) is refused and counts for nothing: "
        "not-a-consent-authority"
    )
    code, out, _ = _explain(root, event, run_cli, "--consents", str(consents), "--json")
    assert json.loads(out)["refused_consents"] == [
        {"consent": 2, "recorded_by": "hub-tipton", "reason": "not-a-consent-authority"}
    ]


def _unevaluable_bundle(tmp_path: Path) -> Path:
    agreements = default_agreements()
    # Evaluable until the need level is 3: then a division by zero, not a false.
    agreements[1]["clauses"][0]["when"] = "10 / (event.need_level - 3) > 1"
    restrictions = default_restrictions()
    # A missing map key: CEL's message quotes the key, here the event's location.
    restrictions[1]["when"] = "{'Elsewhere': false}[event.location]"
    return write_bundle(tmp_path / "b", agreements=agreements, restrictions=restrictions)


def test_explain_marks_a_condition_that_could_not_be_evaluated(
    tmp_path: Path, run_cli: Run
) -> None:
    root = _unevaluable_bundle(tmp_path)
    code, out, _ = _explain(root, _event_file(tmp_path), run_cli)
    assert code == 0
    assert (
        "condition-false (could not be evaluated: ZeroDivisionError: division by zero)"
        in " ".join(out.replace("│", " ").split())
    )
    code, out, _ = _explain(root, _event_file(tmp_path), run_cli, "--json")
    by_party = {d["recipient"]: d for d in json.loads(out)["decisions"]}
    assert by_party["school-a"]["reason"] == "condition-false"
    assert by_party["school-a"]["unevaluated"] == [
        {"condition": "clause", "name": "encompass / encompass",
         "error": "ZeroDivisionError: division by zero"}
    ]  # fmt: skip
    assert by_party["coord"]["unevaluated"] == [
        {"condition": "restriction", "name": "refuge-address",
         "error": "KeyError: no such key or field"}
    ]  # fmt: skip
    assert "Family home" not in out  # withheld, and never quoted by the error


def test_explain_leaves_a_condition_that_was_simply_false_unmarked(
    tmp_path: Path, run_cli: Run
) -> None:
    root = _unevaluable_bundle(tmp_path)
    event = _event_file(tmp_path, need_level=2)
    code, out, _ = _explain(root, event, run_cli, "--json")
    assert code == 0
    by_party = {d["recipient"]: d for d in json.loads(out)["decisions"]}
    assert by_party["school-a"]["reason"] == "condition-false"
    assert by_party["school-a"]["unevaluated"] == []
    code, out, _ = _explain(root, event, run_cli)
    assert "could not be evaluated" not in out


def test_explain_json_names_every_agreement_a_decision_rests_on(
    tmp_path: Path, run_cli: Run
) -> None:
    """agreement_id is the first ground's, as audited; agreement_ids is all of them."""
    agreements = default_agreements()
    second = copy.deepcopy(agreements[0]["clauses"][0])
    second["id"] = "police-to-coord-too"
    agreements.append(agreement("mash", [second]))
    root = write_bundle(tmp_path / "b", agreements=agreements)
    code, out, _ = _explain(root, _event_file(tmp_path), run_cli, "--json")
    assert code == 0
    coord = next(d for d in json.loads(out)["decisions"] if d["recipient"] == "coord")
    assert coord["clause_ids"] == ["police-to-coord", "police-to-coord-too"]
    assert coord["agreement_ids"] == ["early-help", "mash"]
    assert coord["agreement_id"] == "early-help"


def test_explain_with_an_invalid_consent_record_names_the_file_and_the_record(
    tmp_path: Path, run_cli: Run
) -> None:
    """Not 'invalid event: consents[0]...': the event file was fine."""
    root = write_bundle(tmp_path / "b")
    consents = tmp_path / "consents.yaml"
    consents.write_text(
        "- {subject: {nhs_number: '9997877896'}, state: given, purposes: [early_help],\n"
        "   recipients: [coord], recorded_by: coord, recorded_at: 2026-10-01T09:00:00Z}\n"
        "- {subject: {nhs_number: '9997877897'}, state: given, purposes: [early_help],\n"
        "   recipients: [coord], recorded_by: coord, recorded_at: 2026-10-01T09:00:00Z}\n"
    )
    code, out, err = _explain(root, _event_file(tmp_path), run_cli, "--consents", str(consents))
    assert code == 2
    assert out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith(f"accord: error: --consents: {consents}: record 2, subject.nhs_number:")
    assert "invalid event" not in line
    assert "9997877897" not in line
