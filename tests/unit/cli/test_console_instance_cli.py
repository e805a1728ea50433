"""``accord console --instance NAME``: a bad name is refused in one line, before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.audit.conftest import Run


@pytest.mark.parametrize("name", ["Second", "ig/2", ""])
def test_the_console_command_refuses_a_bad_instance_in_one_line_before_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Run, name: str
) -> None:
    """Refused before settings, keystore or Kafka are looked at: none exists here."""
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path / "nothing-here"))
    code, out, err = run_cli(["console", "--instance", name])
    assert (code, out) == (2, "")
    assert err.startswith(f"accord: error: --instance {name!r}: a console instance is 1 to 32")
    assert err.count("\n") == 1
    assert "Traceback" not in err
