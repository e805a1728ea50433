"""A secret given as a file (``ACCORD_*_FILE``) that every account on the host may read is
used, with one warning naming the variable and the file, never its contents; a file only
its owner and group may read (Kubernetes' 0440 for the fsGroup) is used without one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from broker.config import load_settings

_SECRET = "s3cret-token-0123456789abcdef0123456789"


@pytest.mark.parametrize(
    "variable", ["ACCORD_KEYSTORE__PASSPHRASE_FILE", "ACCORD_GATEWAY__TOKEN_FILE"]
)
@pytest.mark.parametrize("mode", [0o644, 0o604, 0o606])
def test_a_secret_file_open_to_every_account_is_used_with_one_warning(
    variable: str, mode: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "wmp.secret"
    secret.write_text(_SECRET + "\n")
    secret.chmod(mode)
    monkeypatch.setenv(variable, str(secret))
    with capture_logs() as logs:
        load_settings()
        load_settings()  # loaded again by the same command: no second warning
    [warning] = [e for e in logs if e["event"] == "secret_file_open_to_others"]
    assert warning["log_level"] == "warning"
    assert warning["setting"] == variable
    assert warning["file"] == str(secret)
    assert warning["mode"] == oct(mode)
    assert _SECRET not in repr(logs)


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o640, 0o440])
def test_a_secret_file_of_its_owner_and_group_alone_is_used_without_a_warning(
    mode: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "passphrase"
    secret.write_text(_SECRET)
    secret.chmod(mode)
    monkeypatch.setenv("ACCORD_KEYSTORE__PASSPHRASE_FILE", str(secret))
    with capture_logs() as logs:
        passphrase = load_settings().keystore.passphrase
    assert passphrase is not None
    assert passphrase.get_secret_value() == _SECRET
    assert logs == []


def test_a_secret_file_reached_through_a_link_is_judged_by_the_file_it_leads_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kubernetes mounts each secret as a link (0777) to the file itself (0440)."""
    data = tmp_path / "..data"
    data.mkdir()
    (data / "token").write_text(_SECRET)
    (data / "token").chmod(0o440)
    (tmp_path / "token").symlink_to(data / "token")
    monkeypatch.setenv("ACCORD_GATEWAY__TOKEN_FILE", str(tmp_path / "token"))
    with capture_logs() as logs:
        load_settings()
    assert logs == []


def test_the_target_keystores_passphrase_file_open_to_every_account_is_warned_of(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``accord keys linkage copy --to-passphrase-file``, the one secret file an option
    names, is judged as the settings' files are."""
    from broker.cli import main

    def run(*argv: str) -> None:
        try:
            main(list(argv))
        except SystemExit as done:
            assert done.code in (0, None)  # noqa: PT017  # success may also exit

    worker, console = tmp_path / "worker", tmp_path / "console"
    passphrase = tmp_path / "console.pass"
    passphrase.write_text("console-passphrase\n")
    passphrase.chmod(0o644)
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ACCORD_KEYSTORE__PASSPHRASE", "console-passphrase")
    run("keys", "init", "--party", "console", "--dir", str(console))
    monkeypatch.setenv("ACCORD_KEYSTORE__PASSPHRASE", "worker-passphrase")
    run("keys", "init", "--party", "worker", "--dir", str(worker))
    run("keys", "linkage", "create", "--dir", str(worker))
    capsys.readouterr()
    run("keys", "linkage", "copy", "--dir", str(worker), "--to", str(console),
        "--to-passphrase-file", str(passphrase))  # fmt: skip
    # The CLI's own logging (main sets it up): one JSON line on stderr.
    err = capsys.readouterr().err
    [warning] = [json.loads(line) for line in err.splitlines() if "secret_file_open" in line]
    assert warning["level"] == "warning"
    assert (warning["setting"], warning["file"]) == ("--to-passphrase-file", str(passphrase))
    assert "console-passphrase" not in err
