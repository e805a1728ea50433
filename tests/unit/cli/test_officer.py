"""`accord audit` signs the officer in: the audit log names an account that proved itself."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from broker.cli._audit import ReportReason, SubjectReason
from broker.cli._officer import FAILED, check_host, cli_chain, sign_in
from broker.config import Settings, load_settings
from broker.console import DEMO_INSTANCE, TotpBox, UserFile, console_chain
from broker.errors import SignInFailed, UsageError
from broker.governance import LookupPurpose, ReportPurpose
from broker.keys import FileKeyStore
from broker.provision._plan import CONSOLE_TRANSACTIONAL_IDS
from tests.unit.audit.conftest import Run

PASSWORD = "correct horse battery staple"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    settings = load_settings()
    FileKeyStore(settings.keys_dir, create=True)
    UserFile(settings.console_users_file, box=box(settings)).add("ig.jo", PASSWORD)
    return settings


def keys(settings: Settings) -> FileKeyStore:
    return FileKeyStore(settings.keys_dir)  # the console's: one keystore for everything


def box(settings: Settings) -> TotpBox:
    return TotpBox.from_keystore(keys(settings), "console", create=True)


def _stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))


def test_the_right_password_on_stdin_signs_the_officer_in(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stdin(monkeypatch, PASSWORD + "\n")
    with capture_logs() as logs:
        assert (
            sign_in(settings, "ig.jo", keys=keys(settings), password_stdin=True, code=None)
            == "ig.jo"
        )
    assert logs == []  # nothing may reach stdout ahead of a command's JSON or CSV


@pytest.mark.parametrize("name", ["ig.jo", "ig.nobody"])
def test_a_wrong_password_or_unknown_account_fail_alike_and_log_no_name(
    name: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stdin(monkeypatch, "not the password at all\n")
    with capture_logs() as logs, pytest.raises(SignInFailed) as failed:
        sign_in(settings, name, keys=keys(settings), password_stdin=True, code=None)
    # Alike, and naming the accounts file read: the demo's officer is in a file of its own.
    assert str(failed.value) == f"{FAILED} (accounts read from {settings.console_users_file})"
    assert logs == []


def test_without_a_terminal_the_password_must_come_on_stdin(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stdin(monkeypatch, PASSWORD + "\n")  # not a terminal: never read unasked
    with pytest.raises(UsageError, match="--password-stdin"):
        sign_in(settings, "ig.jo", keys=keys(settings), password_stdin=False, code=None)


def test_the_command_line_writes_its_own_console_chain() -> None:
    """Apart from a running console's ``console:HOST``, which it would otherwise fence."""
    assert cli_chain("ig-desk") == "console:ig-desk.cli"
    assert cli_chain(None) == f"console:{socket.gethostname()}.cli"


HOSTS = ["ig-desk", "IG-Desk.example.org", "a", "a" * 63, ".".join(["b" * 63] * 3) + ".c"]
NOT_HOSTS = ["", "myhost/demo", "ig desk", "-ig", "ig-", "ig..desk", ".ig", "ig_desk",
             "a" * 64, ".".join(["b" * 63] * 4), "ig\ndesk", "console:ig"]  # fmt: skip


@pytest.mark.parametrize("host", HOSTS)
def test_no_host_the_command_line_takes_names_a_console_s_chain(host: str) -> None:
    """Not the console's of that host, nor any instance's: ``accord audit ... --host
    $(hostname)`` beside a running console never fences it (which would stop it)."""
    assert check_host(host) == host
    chain = cli_chain(host)
    assert chain == f"console:{host}.cli"
    assert "/" not in chain
    consoles = {console_chain(None, host=host), console_chain(DEMO_INSTANCE, host=host)}
    assert chain not in consoles
    assert f"accord-audit-{chain}".startswith(CONSOLE_TRANSACTIONAL_IDS)


@pytest.mark.parametrize("host", NOT_HOSTS)
def test_anything_but_a_host_name_is_refused_in_one_line_without_repeating_it(host: str) -> None:
    with pytest.raises(UsageError, match=r"^--host: give a host name") as refused:
        cli_chain(host)
    assert "\n" not in str(refused.value)
    assert host not in str(refused.value) or host == ""


@pytest.mark.parametrize("command", [["subject", "--nhs-number", "9434765919"], ["report"],
                                     ["review-override", "e-1", "--recipient", "r-1"]])  # fmt: skip
def test_each_audit_command_refuses_a_bad_host_before_asking_for_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Run, command: list[str]
) -> None:
    """Refused as the command line is read: no settings, keystore, password or Kafka."""
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path / "nothing-here"))
    name, *rest = command
    code, out, err = run_cli(["audit", name, "--host", "myhost/demo", *rest])
    assert (code, out) == (2, "")
    assert err.startswith("accord: error: --host: give a host name")
    assert err.count("\n") == 1
    assert "myhost/demo" not in err


def test_the_cli_reasons_are_the_consoles() -> None:
    assert [r.value for r in SubjectReason] == [p.value for p in LookupPurpose]
    assert [r.value for r in ReportReason] == [p.value for p in ReportPurpose]


def test_an_account_with_a_second_factor_needs_a_fresh_code(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyotp

    users = UserFile(settings.console_users_file, box=box(settings))
    users.add("ig.totp", PASSWORD, totp=True)
    enrolment = users.totp_enrolment("ig.totp")
    assert enrolment is not None
    code = pyotp.TOTP(enrolment.secret).now()
    for attempt, expected in ((None, False), ("000000" if code != "000000" else "111111", False),
                              (code, True), (code, False)):  # fmt: skip
        _stdin(monkeypatch, PASSWORD + "\n")
        if expected:
            assert (
                sign_in(settings, "ig.totp", keys=keys(settings), password_stdin=True, code=attempt)
                == "ig.totp"
            )
        else:  # no code, a wrong one, and the right one used a second time
            with pytest.raises(SignInFailed):
                sign_in(settings, "ig.totp", keys=keys(settings), password_stdin=True, code=attempt)


def test_signing_in_never_makes_the_keystores_second_factor_key(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key made by a sign-in (in a pod, in memory) would seal an older Accord's plain
    secret under a key the next restart loses: without one, the secret stays plain."""
    import json

    import pyotp

    secret = pyotp.random_base32()
    (settings.keys_dir / "users-totp.secret").unlink()  # a keystore from before sealing
    data = json.loads(settings.console_users_file.read_text())
    data["users"]["ig.jo"]["totp"] = {"secret": secret, "enrolled_at": "2026-01-05T10:00:00+00:00"}
    settings.console_users_file.write_text(json.dumps(data))
    _stdin(monkeypatch, PASSWORD + "\n")
    code = pyotp.TOTP(secret).now()
    assert (
        sign_in(settings, "ig.jo", keys=keys(settings), password_stdin=True, code=code) == "ig.jo"
    )
    assert not (settings.keys_dir / "users-totp.secret").exists()
    factor = json.loads(settings.console_users_file.read_text())["users"]["ig.jo"]["totp"]
    assert factor["secret"] == secret  # written (the code's step taken), and still plain
    assert "secret_sealed" not in factor
