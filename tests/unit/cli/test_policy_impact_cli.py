"""`accord policy impact`'s one-line refusals, before any key or Kafka is touched: a broken
bundle named by which of the two it is, and a --since that could only compare nothing."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

Run = Callable[[list[str]], tuple[int, str, str]]


@pytest.fixture
def broken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project bundle with one misspelt field path; a home with no keystore at all, so
    a run that went past the bundles would say so instead."""
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path / "home"))
    root = tmp_path / "broken"
    shutil.copytree(REPO / "policies", root, ignore=shutil.ignore_patterns("scenarios"))
    path = root / "agreements" / "sandwell-early-help.yaml"
    text = path.read_text()
    assert "event.child_present, event.location]" in text
    path.write_text(text.replace("event.child_present, event.location]",
                                 "event.child_presnt, event.location]", 1))  # fmt: skip
    return root


def test_a_broken_new_bundle_is_named_as_the_new_one_and_by_its_folder(
    run_cli: Run, broken: Path
) -> None:
    """Both bundles are loaded: 'agreements/x.yaml:83: …' alone does not say which."""
    code, out, err = run_cli(
        ["policy", "impact", "--policies", str(broken), "--current", str(REPO / "policies")]
    )
    assert code == 1
    assert out == ""
    [line] = err.strip().splitlines()
    assert line.startswith(f"accord: error: the new bundle ({broken}{os.sep}): agreements/")
    assert "'event.child_presnt'" in line


def test_a_broken_bundle_in_force_is_named_as_the_one_in_force(run_cli: Run, broken: Path) -> None:
    code, _, err = run_cli(
        ["policy", "impact", "--policies", str(REPO / "policies"), "--current", str(broken)]
    )
    assert code == 1
    [line] = err.strip().splitlines()
    assert line.startswith(f"accord: error: the bundle in force ({broken}{os.sep}): agreements/")


def test_since_in_the_future_is_refused_in_one_line_with_exit_2(run_cli: Run, broken: Path) -> None:
    """It would read no event, compare nothing, and once said 'no decision would change'.
    Refused before the bundles are even loaded (the broken one is not named)."""
    later = (datetime.now(UTC) + timedelta(days=400)).date().isoformat()
    code, out, err = run_cli(
        ["policy", "impact", "--policies", str(broken), "--current", str(REPO / "policies"),
         "--since", later]
    )  # fmt: skip
    assert code == 2
    assert out == ""
    assert err == f"accord: error: --since: {later} is in the future\n"
