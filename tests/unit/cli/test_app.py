"""The `accord` command line: help, and one-line errors for usage mistakes."""

from __future__ import annotations

import pytest

from broker.cli import main


def test_help_lists_every_command_group(capsys: pytest.CaptureFixture[str]) -> None:
    code = 0
    try:
        main(["--help"])
    except SystemExit as exc:
        code = exc.code
    assert code in (0, None)
    out = capsys.readouterr().out
    for command in ("kafka", "keys", "demo"):
        assert command in out


@pytest.mark.parametrize(
    "argv",
    [["kafka", "up", "--bogus"], ["no-such-command"], ["kafka", "up", "--port", "notanumber"]],
)
def test_a_usage_mistake_is_one_line_on_stderr_and_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("accord: error:")
    assert "Traceback" not in captured.err + captured.out
