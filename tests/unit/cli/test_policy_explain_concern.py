"""``accord policy explain`` says when a flagged safeguarding concern did not override
consent because its justification is empty (blank or invisible), rather than leave the
consent reason to read as if no concern had been raised."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from broker.cli import main

REPO = Path(__file__).resolve().parents[3]
OVERRIDE = "justified concern overrides missing consent for the co-ordinating team only"
NOTE = "the safeguarding concern did not override, as its justification is empty"


def _explain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], justification: str | None, *more: str
) -> str:
    scenarios = yaml.safe_load((REPO / "policies/scenarios/safeguarding-override.yaml").read_text())
    scenario = next(s for s in scenarios if s["name"] == OVERRIDE)
    event = {**scenario["event"], "safeguarding": {"concern": True, "justification": justification}}
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event, default=str))
    at = scenario["at"].isoformat()
    argv = ["policy", "explain", str(path), "--policies", str(REPO / "policies"), "--at", at]
    main([*argv, *more])
    return capsys.readouterr().out


@pytest.mark.parametrize("justification", [None, "", "\u200b"])
def test_explain_says_an_unjustified_concern_did_not_override(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    justification: str | None,
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # the reason on one line of the table
    out = " ".join(_explain(tmp_path, capsys, justification).split())
    # The co-ordinating team's clause allows the override; the hub's (required) never does.
    assert f"consent-missing ({NOTE})" in out
    assert out.count(NOTE) == 1


def test_explain_json_carries_the_note_on_the_overridable_decision_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = json.loads(_explain(tmp_path, capsys, "  ", "--json"))
    notes = {d["recipient"]: d.get("no_override") for d in out["decisions"]}
    assert notes["sandwell-coord"] == NOTE
    assert notes["cog-oldbury"] is None


def test_explain_of_a_justified_concern_has_no_such_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert NOTE not in _explain(tmp_path, capsys, "Asking would put the baby at risk.")
