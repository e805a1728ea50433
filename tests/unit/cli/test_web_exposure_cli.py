"""``accord console`` and ``accord desk`` on an address beyond loopback: refused in one line
naming the settings unless TLS is theirs or a declared proxy's (a pen test signed in to a
desk on 192.0.2.2 over plain HTTP); started with a warning line behind the proxy; on loopback,
as before, with no line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from broker.console import ConsoleRun
from broker.desk import DeskRun, desk_linkage_key
from broker.keys import SPECIAL_PRINCIPALS, FileKeyStore
from tests.unit.audit.conftest import Run

WARNING = "WARNING: plain HTTP: TLS is left to the proxy in front"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    monkeypatch.setenv("ACCORD_KEYSTORE__PATH", str(tmp_path / "keys"))
    for name in ("ACCORD_CONSOLE__HOST", "ACCORD_DESK__HOST"):
        monkeypatch.delenv(name, raising=False)
    keys = FileKeyStore(tmp_path / "keys", create=True)
    keys.set_linkage_key()  # the console's
    keys.ensure_party("cog-wednesbury")
    keys.ensure_party("worker", purposes=SPECIAL_PRINCIPALS["worker"])
    desk_linkage_key(keys, party="cog-wednesbury", create=True)
    return tmp_path


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each app's run as started, its address said, no server or Kafka: the URLs said."""
    urls: list[str] = []

    async def console(*_: Any, started: Callable[[ConsoleRun], None], **__: Any) -> None:
        started(ConsoleRun(url="http://0.0.0.0:8765/", chain="console:test"))
        urls.append("console")

    async def desk(settings: Any, party: str, *_: Any, started: Callable[[DeskRun], None],
                   **__: Any) -> None:  # fmt: skip
        started(DeskRun(url="http://0.0.0.0:8766/", party=party))
        urls.append("desk")

    monkeypatch.setattr("broker.console.run_console", console)
    monkeypatch.setattr("broker.desk.run_desk", desk)
    return urls


COMMANDS = {
    "console": ["console", "--no-index"],
    "desk": ["desk", "--as", "cog-wednesbury"],
}


@pytest.mark.parametrize("app", ["console", "desk"])
@pytest.mark.parametrize("host", ["192.0.2.2", "0.0.0.0"])  # noqa: S104  # refused, never bound
def test_beyond_loopback_without_tls_it_refuses_in_one_line_naming_the_setting(
    home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch, served: list[str],
    app: str, host: str,
) -> None:  # fmt: skip
    monkeypatch.setenv(f"ACCORD_{app.upper()}__ALLOWED_HOSTS", "desk.example")
    code, _, err = run_cli([*COMMANDS[app], "--host", host])
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith(f"accord: error: the {app} would listen on {host}, beyond this ")
    assert f"ACCORD_{app.upper()}__TLS_TERMINATED_BY_PROXY=true" in err
    assert f"ACCORD_{app.upper()}__TLS_CERT" in err
    assert served == []  # refused before it served


@pytest.mark.parametrize("app", ["console", "desk"])
def test_behind_a_declared_tls_proxy_it_starts_and_warns_in_one_line(
    home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch, served: list[str], app: str
) -> None:
    monkeypatch.setenv(f"ACCORD_{app.upper()}__ALLOWED_HOSTS", "desk.example")
    monkeypatch.setenv(f"ACCORD_{app.upper()}__TLS_TERMINATED_BY_PROXY", "true")
    code, out, err = run_cli([*COMMANDS[app], "--host", "0.0.0.0"])  # noqa: S104
    assert (code, served) == (0, [app]), err
    [warning] = [line for line in err.splitlines() if "plain HTTP" in line]
    assert warning.startswith(WARNING)
    assert f"ACCORD_{app.upper()}__TLS_TERMINATED_BY_PROXY" in warning
    assert "http://0.0.0.0:" in out


@pytest.mark.parametrize("app", ["console", "desk"])
def test_on_loopback_it_starts_as_before_with_no_line(
    home: Path, run_cli: Run, served: list[str], app: str
) -> None:
    code, _, err = run_cli(COMMANDS[app])
    assert (code, served) == (0, [app]), err
    assert "plain HTTP" not in err
    assert "TLS" not in err


def test_the_demo_refuses_a_console_beyond_loopback_without_tls_before_kafka_starts(
    home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its console has a printed password and no second factor."""
    monkeypatch.setenv("ACCORD_CONSOLE__HOST", "192.0.2.2")
    code, out, err = run_cli(["demo"])
    assert code == 2
    assert err.count("\n") == 1
    assert "ACCORD_CONSOLE__TLS_TERMINATED_BY_PROXY=true" in err
    assert "kafka" not in out
    assert not (home / "kafka-data").exists()
