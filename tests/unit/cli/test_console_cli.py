"""``accord console add-user|users|remove-user``, and the console refusing to start unready."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.audit.conftest import Run


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    return tmp_path


def add(run_cli: Run, monkeypatch: pytest.MonkeyPatch, name: str, password: str,
        *extra: str) -> tuple[int, str, str]:  # fmt: skip
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(password + "\n"))
    return run_cli(["console", "add-user", name, "--password-stdin", *extra])


def test_add_user_stores_a_hash_and_lists_the_account(
    home: Path,
    run_cli: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, out, err = add(run_cli, monkeypatch, "ig.jo", "a long enough secret")
    assert (code, err) == (0, "")
    assert out.startswith("console user ig.jo created")
    stored = json.loads((home / "console" / "users.json").read_text())
    assert stored["users"]["ig.jo"]["hash"].startswith("$argon2id$")
    code, out, _ = run_cli(["console", "users"])
    assert code == 0
    assert out.startswith("ig.jo\tcreated ")
    assert "argon2" not in out


@pytest.mark.parametrize(
    ("name", "password", "message"),
    [
        ("Bad Name", "a long enough secret", "user name"),
        ("ig.jo", "short", "password"),
        ("ig.jo", "bytes \udcff\udcfe not UTF-8", "password: not UTF-8"),
    ],  # as stdin decodes them
)
def test_a_bad_account_is_one_line_on_stderr(
    home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch,
    name: str, password: str, message: str,
) -> None:  # fmt: skip
    code, _, err = add(run_cli, monkeypatch, name, password)
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith(f"accord: error: {message}")
    assert password not in err


def test_an_existing_user_needs_reset(
    home: Path,
    run_cli: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    add(run_cli, monkeypatch, "ig.jo", "a long enough secret")
    code, _, err = add(run_cli, monkeypatch, "ig.jo", "another long secret")
    assert code == 2
    assert "--reset" in err
    code, out, _ = add(run_cli, monkeypatch, "ig.jo", "another long secret", "--reset")
    assert code == 0
    assert "updated" in out


def test_remove_user(home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    add(run_cli, monkeypatch, "ig.jo", "a long enough secret")
    assert run_cli(["console", "remove-user", "ig.jo"])[0] == 0
    code, _, err = run_cli(["console", "remove-user", "ig.jo"])
    assert (code, err) == (2, "accord: error: no console user ig.jo\n")


def test_the_console_will_not_start_without_an_account(home: Path, run_cli: Run) -> None:
    code, _, err = run_cli(["console", "--port", "0"])
    assert code == 2
    assert err == (
        "accord: error: no console accounts yet: create one with 'accord console add-user NAME'\n"
    )


def test_the_console_says_so_when_its_port_is_taken(
    home: Path,
    run_cli: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    from broker.keys import FileKeyStore

    FileKeyStore(home / "keys", create=True).set_linkage_key()
    add(run_cli, monkeypatch, "ig.jo", "a long enough secret")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run_cli(["console", "--port", str(port), "--no-index"])
    assert code == 2
    assert err.startswith(f"accord: error: cannot listen on 127.0.0.1:{port}")
    assert err.count("\n") == 1
