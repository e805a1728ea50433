"""`accord policy explain --consents`: a record naming a purpose or recipient the bundle does
not know is said to be refused, with the word and the nearest real one, and is decided
without, as the worker would (it never files it); never ignored in silence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.cli import main

ROOT = Path(__file__).resolve().parents[3]
EVENT = ROOT / "docs" / "examples" / "tipton-event.json"
GIVEN = yaml.safe_load((ROOT / "docs" / "examples" / "tipton-consents.yaml").read_text())
AT = "2026-11-23T07:30:00Z"


def _explain(
    tmp_path: Path, records: list[dict[str, Any]], capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, str]:
    file = tmp_path / "consents.yaml"
    file.write_text(yaml.safe_dump(records))
    code: Any = 0
    try:
        main(["policy", "explain", str(EVENT), "--policies", str(ROOT / "policies"),
              "--consents", str(file), "--at", AT, *extra])  # fmt: skip
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return int(code or 0), out


def _withdrawal(purposes: list[str], recipients: list[str]) -> dict[str, Any]:
    return {**GIVEN[0], "state": "withdrawn", "purposes": purposes, "recipients": recipients,
            "recorded_at": "2026-11-01T09:00:00Z"}  # fmt: skip


@pytest.mark.parametrize(
    ("purposes", "recipients", "term", "said"),
    [
        (["early-help"], ["kind:hub"], "early-help", "unknown-purpose: purpose 'early-help' "
         "is not one of the bundle's purposes: did you mean 'early_help'?"),
        (["early_help"], ["kind:hubs"], "kind:hubs", "unknown-recipient: recipient "
         "'kind:hubs' is not a kind of party: did you mean 'kind:hub'?"),
        (["early_help"], ["cog-tiptn"], "cog-tiptn", "unknown-recipient: recipient "
         "'cog-tiptn' is not a party of the bundle; did you mean 'cog-tipton'?"),
    ],
)  # fmt: skip
def test_a_misspelt_withdrawal_is_said_to_be_refused_naming_the_word(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    purposes: list[str],
    recipients: list[str],
    term: str,
    said: str,
) -> None:
    records = [*GIVEN, _withdrawal(purposes, recipients)]
    code, out = _explain(tmp_path, records, capsys)
    assert code == 0
    assert out.splitlines()[0] == (
        f"Consent 3 (recorded by sandwell-coord) is refused and counts for nothing: {said}"
    )
    code, out = _explain(tmp_path, records, capsys, "--json")
    [refused] = json.loads(out)["refused_consents"]
    assert refused == {
        "consent": 3,
        "recorded_by": "sandwell-coord",
        "reason": said.split(":", 1)[0],
        "term": term,
        "detail": said,
    }


def test_a_refused_record_is_decided_without_as_the_worker_would(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A grant for '*' with a misspelt purpose beside it would let the hub hear, if counted."""
    records = [{**r, "purposes": ["*", "early-help"]} for r in GIVEN]
    code, out = _explain(tmp_path, records, capsys, "--json")
    assert code == 0
    answer = json.loads(out)
    assert [r["consent"] for r in answer["refused_consents"]] == [1, 2]
    [hub] = [d for d in answer["decisions"] if d["recipient"] == "cog-tipton"]
    assert (hub["outcome"], hub["consent"]) == ("not_shared", "missing")


def test_a_withdrawal_with_a_misspelt_word_says_which_words_count_and_which_are_ignored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Filed for the words the bundle knows, as the worker files it, so the hub is told no
    more; the misspelt word is named, with the nearest real one."""
    withdrawals = [_withdrawal(["early_help", "school-health"], ["kind:hub", "kind:hubs"])
                   | {"subject": r["subject"]} for r in GIVEN]  # fmt: skip
    records = [*GIVEN, *withdrawals]
    code, out = _explain(tmp_path, records, capsys)
    assert code == 0
    purpose = (
        "unknown-purpose: purpose 'school-health' is not one of the bundle's purposes: "
        "domestic_abuse_support, early_help, parenting_support, safeguarding"
    )
    recipient = "unknown-recipient: recipient 'kind:hubs' is not a kind of party: did you mean "
    recipient += "'kind:hub'?"
    ignored = f"{purpose}; {recipient}"
    assert out.splitlines()[:2] == [
        f"Consent {n} (recorded by sandwell-coord) is a withdrawal that counts for purposes "
        f"early_help and recipients kind:hub only; ignored: {ignored}"
        for n in (3, 4)
    ]
    assert "is refused" not in out
    code, out = _explain(tmp_path, records, capsys, "--json")
    answer = json.loads(out)
    assert answer["refused_consents"] == []
    [first, _] = answer["partly_ignored_consents"]
    assert first == {
        "consent": 3, "recorded_by": "sandwell-coord",
        "purposes": ["early_help"], "recipients": ["kind:hub"],
        "ignored": [
            {"term": "school-health", "reason": "unknown-purpose",
             "detail": purpose},
            {"term": "kind:hubs", "reason": "unknown-recipient",
             "detail": recipient},
        ],
    }  # fmt: skip
    [hub] = [d for d in answer["decisions"] if d["recipient"] == "cog-tipton"]
    assert (hub["outcome"], hub["consent"]) == ("not_shared", "withdrawn")
