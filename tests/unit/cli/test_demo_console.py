"""The demo's console: its officer's account never outlives the demo nor reaches the
console's own users file; what it prints names no database password, and its commands for
another terminal are complete. The console server itself is faked: ``run_console`` runs in
the e2e tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

import broker.console
import broker.governance
from broker.cli._demo_console import DEMO_OFFICER, _index_label, demo_console
from broker.cli._demo_hints import DemoShell, demo_users_file
from broker.config import AuditSettings, KafkaSettings, Settings
from broker.console import DEMO_INSTANCE, ConsoleRun, TotpBox, UserFile
from broker.errors import UsageError
from broker.keys import FileKeyStore
from broker.policy import load_bundle

REPO = Path(__file__).resolve().parents[3]


class _Store:
    def close(self) -> None:
        pass


class _Console:
    """``run_console``, faked: what the console would serve, seen while it runs."""

    def __init__(
        self,
        *,
        forever: bool = False,
        fail: Exception | None = None,
        check: Callable[[UserFile], object] | None = None,
    ) -> None:
        self.forever, self.fail, self.check = forever, fail, check
        self.users_file: Path | None = None
        self.accounts: list[str] = []
        self.checked: object = None
        self.instance: object = None
        self.running = asyncio.Event()

    async def __call__(
        self, settings: Settings, *_a: Any, started: Callable[[ConsoleRun], None], **_k: Any
    ) -> None:
        if self.fail is not None:
            raise self.fail
        self.users_file = settings.console_users_file
        self.instance = _k.get("instance")
        users = _users(settings.console_users_file, settings)
        self.accounts = [a.name for a in users.accounts()]
        if self.check is not None:
            self.checked = self.check(users)
        started(ConsoleRun(url="http://127.0.0.1:8765/", chain="console:demo"))
        self.running.set()
        if self.forever:
            await asyncio.Event().wait()


def _users(path: Path, settings: Settings) -> UserFile:
    keys = FileKeyStore(settings.keys_dir)
    return UserFile(path, box=TotpBox.from_keystore(keys, "console", create=True))


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(broker.governance, "open_store", lambda *_a, **_k: _Store())
    FileKeyStore(tmp_path / "keys", create=True)  # the console's: it seals the accounts file
    return Settings(home=tmp_path)


def _run(settings: Settings, console: _Console, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setattr(broker.console, "run_console", console)
    said: list[str] = []
    asyncio.run(demo_console(settings, None, None, asyncio.Event(), said.append))  # type: ignore[arg-type]
    return said


def test_the_demo_officer_is_in_a_file_of_the_demo_s_own_and_gone_when_it_ends(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real console (the console's own users file) never serves the password-only account
    whose password the demo printed, during the demo or after it."""
    console = _Console()
    _run(settings, console, monkeypatch)
    demo_file = demo_users_file(settings.home)
    assert console.users_file == demo_file
    assert console.users_file != settings.console_users_file
    assert console.accounts == [DEMO_OFFICER]
    assert not settings.console_users_file.exists()
    assert not demo_file.exists()


def test_the_demo_s_console_writes_a_chain_of_its_own_beside_a_console_started_by_hand(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """console:<host>/demo: an 'accord console' run in the same home writes console:<host>,
    so neither fences the other."""
    console = _Console()
    _run(settings, console, monkeypatch)
    assert console.instance == DEMO_INSTANCE == "demo"


def test_the_demo_officer_goes_when_the_demo_is_stopped_mid_run(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C and SIGTERM end the demo by cancelling its parts, the console included."""
    console = _Console(forever=True)
    monkeypatch.setattr(broker.console, "run_console", console)

    async def stopped() -> None:
        task = asyncio.create_task(
            demo_console(settings, None, None, asyncio.Event(), lambda _l: None)  # type: ignore[arg-type]
        )
        await console.running.wait()
        assert demo_users_file(settings.home).exists()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(stopped())
    assert not demo_users_file(settings.home).exists()


def test_the_demo_officer_goes_when_the_console_cannot_start(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    console = _Console(fail=UsageError("cannot listen on 127.0.0.1:8765: Address already in use"))
    with pytest.raises(UsageError, match="--console-port"):
        _run(settings, console, monkeypatch)
    assert not demo_users_file(settings.home).exists()


def test_a_killed_demo_s_accounts_are_replaced_at_the_next_start(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A demo killed outright (SIGKILL, a power cut) leaves its file: the next start makes it
    anew, so neither the old password nor anything else in it signs in."""
    left = _users(demo_users_file(settings.home), settings)
    left.add(DEMO_OFFICER, "printed-on-a-terminal-1")
    left.add("someone.else", "printed-on-a-terminal-2")
    console = _Console(check=lambda users: users.verify(DEMO_OFFICER, "printed-on-a-terminal-1"))
    _run(settings, console, monkeypatch)
    assert console.accounts == [DEMO_OFFICER]
    assert console.checked is False


def test_an_older_demo_s_officer_is_removed_from_the_console_s_own_file(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An Accord before this one kept ``ig.demo`` in the console's own users file: the next
    demo removes it there, and leaves every other account, and an ``ig.demo`` with a second
    factor (not the demo's), alone."""
    real = _users(settings.console_users_file, settings)
    real.add(DEMO_OFFICER, "an-older-sample-password")
    real.add("jo.officer", "a-real-staff-password", totp=True)
    said = _run(settings, _Console(), monkeypatch)
    assert [a.name for a in real.accounts()] == ["jo.officer"]
    assert any(f"removed the password-only {DEMO_OFFICER}" in line for line in said)

    real.add(DEMO_OFFICER, "a-real-staff-password", totp=True)
    _run(settings, _Console(), monkeypatch)
    assert [a.name for a in real.accounts()] == [DEMO_OFFICER, "jo.officer"]


def test_the_demo_prints_complete_commands_for_another_terminal(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The audit report names the demo's account, a reason and the demo's users file; the
    setup exports the demo's home, passphrase file and bundle, so that the desk, which never
    falls back to the example bundle, reads the demo's."""
    monkeypatch.setattr(broker.console, "run_console", _Console())
    passphrase = settings.home / "keystore-passphrase"
    shell = DemoShell.for_demo(
        home=settings.home, policies=REPO / "policies", passphrase_file=passphrase,
        kafka=KafkaSettings(), environ={}, cwd=REPO,
    )  # fmt: skip
    said: list[str] = []
    policy = load_bundle(REPO / "policies")
    asyncio.run(demo_console(settings, None, policy, asyncio.Event(), said.append, shell=shell))  # type: ignore[arg-type]
    start = next(i for i, line in enumerate(said) if line.startswith("from another terminal"))
    commands = [line.strip() for line in said[start + 1 :]]
    assert commands[0] == f"cd {REPO}"
    users = demo_users_file(settings.home)
    # The demo's users file is set on each command that signs in, never exported: a real
    # `accord console` started later from that shell must not serve the demo's account.
    assert commands[1] == (
        f"export ACCORD_HOME={settings.home} ACCORD_KEYSTORE__PASSPHRASE_FILE={passphrase} "
        f"ACCORD_POLICIES={REPO / 'policies'}"
    )
    accord = f"ACCORD_CONSOLE__USERS_FILE={users} {shell.accord}"
    assert f"{shell.accord} audit verify" in commands
    assert f"{accord} audit report --as {DEMO_OFFICER} --reason oversight" in commands
    assert (
        f'{accord} audit subject --nhs-number "$NHS" --as {DEMO_OFFICER} --reason '
        "subject_access_request --format html > sar.html"
    ) in commands
    assert (
        f'{accord} audit review-override "$EVENT" --recipient "$TO" --as {DEMO_OFFICER} '
        "--finding justified --reference IG-DEMO-1"
    ) in commands
    assert not any("export" in c and "USERS_FILE" in c for c in commands)
    assert f"{shell.accord} tail --as cog-tipton" in commands
    # The demo prints no NHS number: the hint names the command whose output has one.
    assert (
        "# a subject access request: set NHS to a child's NHS number from the output of "
        "'accord tail --as cog-tipton' (below)"
    ) in commands
    assert commands.index(f"{shell.accord} tail --as cog-tipton") > commands.index(
        next(c for c in commands if c.startswith("# a subject access request"))
    )
    assert f"{shell.accord} desk add-user --as sandwell-coord kim.ward" in commands


@pytest.mark.parametrize(
    ("db", "shown"),
    [
        ("postgresql://accord:Sup3r-Secret@db.example/audit", "postgresql://db.example/audit"),
        ("postgres://accord:Sup3r-Secret@db.example:5433/audit?password=Sup3r-Secret",
         "postgres://db.example:5433/audit"),
        ("postgresql://accord:Sup3r-Secret@[::1]/audit", "postgresql://[::1]/audit"),
        ("postgresql:///audit?host=/run/postgresql&password=Sup3r-Secret", "postgresql:///audit"),
        ("postgresql://accord:Sup3r-Secret@db.example:notaport/audit",
         "PostgreSQL (ACCORD_AUDIT__DB)"),
        ("sqlite:///var/lib/accord/audit.db", "sqlite:///var/lib/accord/audit.db"),
    ],
)  # fmt: skip
def test_the_audit_index_is_named_without_user_or_password(db: str, shown: str) -> None:
    assert _index_label(db) == shown


def test_the_demo_prints_a_postgresql_index_without_its_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(broker.governance, "open_store", lambda *_a, **_k: _Store())
    url = "postgresql://accord:Sup3r-Secret@db.example/audit"
    settings = Settings(home=tmp_path, audit=AuditSettings(db=SecretStr(url)))
    FileKeyStore(tmp_path / "keys", create=True)
    said = _run(settings, _Console(), monkeypatch)
    assert [line for line in said if line.startswith("audit index:")] == [
        "audit index: postgresql://db.example/audit"
    ]
    assert not [line for line in said if "Sup3r-Secret" in line or "accord@" in line]
