"""docs/policy-language.md's worked example runs as written, and says what the engine does."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.cli import main
from broker.policy._scenario import collect_files, load_scenarios

REPO = Path(__file__).resolve().parents[3]
DOC = REPO / "docs" / "policy-language.md"
EXAMPLES = REPO / "docs" / "examples"
SCENARIOS = REPO / "policies" / "scenarios" / "police-and-encompass.yaml"


def _scenario() -> dict[str, Any]:
    (found,) = [s for s in yaml.safe_load(SCENARIOS.read_text())
                if s["name"].startswith("Tipton incident with consent")]  # fmt: skip
    return found


def _plain(value: Any) -> Any:
    # YAML reads times as datetimes; the JSON file writes them as the event schema does.
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat().replace("+00:00", "Z")
    return value


def test_the_example_files_are_the_scenarios_event_and_consents() -> None:
    """The files the docs run cannot drift from the scenario the bundle's tests pin."""
    scenario = _scenario()
    event = json.loads((EXAMPLES / "tipton-event.json").read_text())
    consents = yaml.safe_load((EXAMPLES / "tipton-consents.yaml").read_text())
    assert event == _plain(scenario["event"])
    assert consents == _plain(scenario["consents"])


def _command() -> list[str]:
    text = DOC.read_text()
    found = re.search(r"\$ accord (policy explain docs/examples/[^\n]*\\\n[^\n]*)", text)
    assert found, "section 8's command is not in the doc"
    return found.group(1).replace("\\\n", " ").split()


def _summary_rows() -> list[tuple[str, str, str, str]]:
    text = DOC.read_text()
    table = text.split("| Recipient | Outcome | Reason | Clause |", 1)[1].split("\n\n", 1)[0]
    rows = []
    for line in table.strip().splitlines()[1:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows.append((cells[0], cells[1], cells[2], cells[3]))
    return rows


def test_section_8s_command_runs_and_its_summary_table_is_what_explain_decides(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    code: Any = 0
    try:
        main([*_command(), "--json"])
    except SystemExit as exc:
        code = exc.code
    assert not code
    out = json.loads(capsys.readouterr().out)
    decided = [
        (d["recipient"], d["outcome"], d.get("reason") or "",
         f"{d['agreement_id']} v{d['agreement_version']} / {','.join(d['clause_ids'])}")
        for d in out["decisions"]
    ]  # fmt: skip
    assert decided == _summary_rows()


def test_section_8s_header_line_is_explain_s_shortened_to_fit_and_json_keeps_the_whole_hash(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The header names the bundle by a shortened version, as the doc shows it, so that it
    fits one line of 80 columns; --json still gives the whole version."""
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("COLUMNS", "80")
    main([*_command(), "--json"])
    whole = json.loads(capsys.readouterr().out)["policy_version"]
    main(_command())
    header = capsys.readouterr().out.splitlines()[0]
    assert header.endswith(f" under policy {whole[:19]}…")
    assert len(header) <= 80
    # The hash itself changes with the bundle; the doc shows its form.
    (documented,) = re.findall(r"^Decisions at .*$", DOC.read_text(), re.MULTILINE)
    digits = re.compile(r"sha256:[0-9a-f]{12}…")
    assert digits.sub("sha256:…", documented) == digits.sub("sha256:…", header)


def test_section_9s_scenario_run_counts_the_projects_scenarios() -> None:
    """Its example output said 75 passed when the project's bundle held 77 scenarios: the
    count under `accord policy test policies/scenarios` is the scenarios found there."""
    (passed,) = re.findall(r"^(\d+) passed, 0 failed$", DOC.read_text(), re.MULTILINE)
    files = collect_files([REPO / "policies" / "scenarios"])
    assert int(passed) == sum(len(load_scenarios(f)) for f in files)
