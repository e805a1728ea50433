"""Settings read once at the entry point: defaults users can rely on."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.config import load_settings

REPO = Path(__file__).resolve().parents[2]


def test_the_default_bundle_is_the_projects_when_there_is_none_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings().policies == REPO / "policies"
    (tmp_path / "policies").mkdir()
    assert load_settings().policies == Path("policies")  # one here wins
