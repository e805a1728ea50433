"""``accord console add-user|users|remove-user`` (with a second factor by default, sealed under
the console's keystore), and the console refusing to start unready."""

from __future__ import annotations

import json
from pathlib import Path

import pyotp
import pytest

from broker.console import TotpBox, UserFile
from broker.keys import FileKeyStore
from tests.unit.audit.conftest import Run


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    FileKeyStore(tmp_path / "keys", create=True)  # the console's (one keystore for all)
    return tmp_path


def box(home: Path) -> TotpBox:
    return TotpBox.from_keystore(FileKeyStore(home / "keys"), "console", create=True)


def secret_of(home: Path, name: str) -> str:
    """The account's TOTP secret, as only the console's keystore can open it."""
    factor = json.loads((home / "console" / "users.json").read_text())["users"][name]["totp"]
    assert "secret" not in factor
    return box(home).open(name, factor["secret_sealed"])


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
    assert secret_of(home, "ig.jo") not in out


def test_users_with_no_account_says_so_naming_the_file_it_read(
    home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Silence left a wrong ACCORD_HOME unnoticed; none is not an error, so exit 0."""
    path = home / "console" / "users.json"
    assert run_cli(["console", "users"]) == (
        0, f"no accounts in {path} (the file does not exist)\n", ""
    )  # fmt: skip
    add(run_cli, monkeypatch, "ig.jo", "a long enough secret")
    assert run_cli(["console", "remove-user", "ig.jo"])[0] == 0
    assert run_cli(["console", "users"]) == (0, f"no accounts in {path}\n", "")


def test_add_user_enrols_a_second_factor_and_shows_it_once(
    home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = add(run_cli, monkeypatch, "ig.jo", "a long enough secret")
    assert (code, err) == (0, "")
    secret = secret_of(home, "ig.jo")
    assert secret not in (home / "console" / "users.json").read_text()
    assert "authenticator app" in out
    [uri] = [w for w in out.split() if w.startswith("otpauth://totp/")]
    assert f"secret={secret}" in uri
    assert out.count(secret) == 2  # in the URI and on its own, for typing in
    totp = pyotp.TOTP(secret)
    users = UserFile(home / "console" / "users.json", box=box(home))
    assert not users.authenticate("ig.jo", "a long enough secret", None)
    assert users.authenticate("ig.jo", "a long enough secret", totp.now())
    assert secret not in run_cli(["console", "users"])[1]


def test_add_user_without_a_second_factor_warns_loudly(
    home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = add(run_cli, monkeypatch, "ig.jo", "a long enough secret", "--no-totp")
    assert code == 0
    assert "otpauth" not in out
    assert err.startswith("WARNING: ig.jo has NO second factor")
    stored = json.loads((home / "console" / "users.json").read_text())
    assert "totp" not in stored["users"]["ig.jo"]


def test_the_account_list_says_which_accounts_have_a_second_factor(
    home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    add(run_cli, monkeypatch, "ig.jo", "a long enough secret")
    add(run_cli, monkeypatch, "ig.sam", "a long enough secret", "--no-totp")
    lines = run_cli(["console", "users"])[1].splitlines()
    assert [line.split("\t")[0::2] for line in lines] == [
        ["ig.jo", "second factor: TOTP"],
        ["ig.sam", "NO second factor"],
    ]


def test_reset_gives_a_new_password_and_a_new_second_factor(
    home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    add(run_cli, monkeypatch, "ig.jo", "a long enough secret")
    old = secret_of(home, "ig.jo")
    code, out, _ = add(run_cli, monkeypatch, "ig.jo", "another long secret", "--reset")
    assert code == 0
    new = secret_of(home, "ig.jo")
    assert new != old
    assert new in out


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


def test_add_user_needs_the_consoles_keystore(
    tmp_path: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its key seals the second factor: without the keystore, no account is made at all."""
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    code, _, err = add(run_cli, monkeypatch, "ig.jo", "a long enough secret")
    assert code != 0
    assert err.startswith(f"accord: error: no keystore for console at {tmp_path / 'keys'}: restore")
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "console" / "users.json").exists()


def test_remove_user(home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    add(run_cli, monkeypatch, "ig.jo", "a long enough secret")
    assert run_cli(["console", "remove-user", "ig.jo"])[0] == 0
    code, _, err = run_cli(["console", "remove-user", "ig.jo"])
    assert (code, err) == (2, "accord: error: no console user ig.jo\n")


def test_the_console_starts_without_an_account_and_logs_how_to_make_one(
    home: Path, run_cli: Run
) -> None:
    """It used to refuse (a crash loop in a pod, with nothing to exec add-user into): now it
    goes on, saying how to make the first account (no name, no address), and stops only at
    what really stops it (here, a port already taken)."""
    import socket

    FileKeyStore(home / "keys", create=True).set_linkage_key()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run_cli(["console", "--port", str(port), "--no-index"])
    assert code == 2
    assert "no console accounts yet" not in err.splitlines()[-1]
    assert err.splitlines()[-1].startswith(f"accord: error: cannot listen on 127.0.0.1:{port}")
    [warning] = [json.loads(line) for line in err.splitlines() if "console_no_accounts" in line]
    assert (warning["level"], warning["command"]) == ("warning", "accord console add-user NAME")
    assert set(warning) == {"event", "level", "timestamp", "command"}


def test_the_console_still_refuses_a_damaged_users_file(home: Path, run_cli: Run) -> None:
    """A file that is there but unreadable is a fault, not a first start."""
    FileKeyStore(home / "keys", create=True).set_linkage_key()
    (home / "console").mkdir(mode=0o700)
    (home / "console" / "users.json").write_text("{not json")
    code, _, err = run_cli(["console", "--port", "0", "--no-index"])
    assert code != 0
    assert err.splitlines()[-1].endswith("cannot read the console accounts file")
    assert "console_no_accounts" not in err


def test_a_policies_folder_named_but_missing_stops_the_console_before_it_starts(
    home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mistyped --policies used to start a console with no bundle, saying nothing."""
    assert add(run_cli, monkeypatch, "ig.jo", "a long enough secret", "--no-totp")[0] == 0
    code, _, err = run_cli(["console", "--port", "0", "--policies", str(home / "nowhere")])
    assert code == 2
    assert err == f"accord: error: --policies: {home / 'nowhere'} is not a policy bundle folder\n"


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


def test_add_user_makes_the_device_cookie_key_in_the_console_s_keystore(
    home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    from broker.webauth import device_key, device_secret_name

    assert add(run_cli, monkeypatch, "ig.jo", "a long enough secret")[0] == 0
    made = home / "keys" / f"{device_secret_name('console')}.secret"
    assert made.is_file()
    users = home / "console" / "users.json"
    key = device_key(FileKeyStore(home / "keys"), "console", users)
    assert add(run_cli, monkeypatch, "ig.two", "a long enough secret")[0] == 0
    assert device_key(FileKeyStore(home / "keys"), "console", users) == key  # made once


def test_add_user_leaves_an_older_consoles_file_and_the_keystore_as_they_are(
    home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """add-user runs in the console's pod on Kubernetes, whose keystore lives in memory: a key
    moved in there, and the file on the volume deleted, would be gone at its next restart.
    The console reads the file where it is; only keys init, where the keystore is kept, moves
    it in."""
    import os

    from broker.webauth import device_key, device_secret_name

    old = os.urandom(32)
    plain = home / "console" / "device-cookie.key"
    plain.parent.mkdir(mode=0o700)
    plain.write_bytes(old)
    plain.chmod(0o600)
    assert add(run_cli, monkeypatch, "ig.jo", "a long enough secret")[0] == 0
    assert plain.read_bytes() == old
    assert not (home / "keys" / f"{device_secret_name('console')}.secret").exists()
    assert device_key(FileKeyStore(home / "keys"), "console", plain.with_name("users.json")) == old


def test_the_console_makes_no_device_cookie_key_and_says_it_will_forget_devices(
    home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A keystore enrolment has not given the key yet (made before it, or restored): the
    console still serves, and writes nothing."""
    import socket

    from broker.webauth import device_secret_name

    secret = home / "keys" / f"{device_secret_name('console')}.secret"
    FileKeyStore(home / "keys", create=True).set_linkage_key()
    add(run_cli, monkeypatch, "ig.jo", "a long enough secret")
    secret.unlink()
    with socket.socket() as taken:  # stops the console just after it read the key
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run_cli(["console", "--port", str(port), "--no-index"])
    assert code == 2
    assert not list((home / "keys").glob("device-cookie*"))
    assert not (home / "console" / "device-cookie.key").exists()
    [warning] = [line for line in err.splitlines() if "device_key_ephemeral" in line]
    assert "accord keys init --party console" in warning


def legacy_account(home: Path, name: str) -> str:
    """An account with a second factor as an Accord from before sealing left it: plain."""
    from argon2 import PasswordHasher

    secret = pyotp.random_base32()
    path = home / "console" / "users.json"
    data = json.loads(path.read_text()) if path.exists() else {"format": 1, "users": {}}
    data["users"][name] = {
        "hash": PasswordHasher(time_cost=1, memory_cost=64, parallelism=1).hash("a long secret"),
        "created_at": "2026-01-05T10:00:00+00:00",
        "totp": {"secret": secret, "enrolled_at": "2026-01-05T10:00:00+00:00"},
    }
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_text(json.dumps(data))
    return secret


def test_listing_and_removing_accounts_never_make_the_second_factor_key(
    home: Path, run_cli: Run
) -> None:
    """Only enrolment makes it: a remove-user in a pod whose keystore lacks it would otherwise
    seal the other accounts' plain secrets under a key the next restart loses."""
    kept = legacy_account(home, "ig.jo")
    legacy_account(home, "ig.sam")
    assert run_cli(["console", "users"])[0] == 0
    assert run_cli(["console", "remove-user", "ig.sam"])[0] == 0
    assert not (home / "keys" / "users-totp.secret").exists()
    assert not list((home / "keys").glob("device-cookie*"))
    factor = json.loads((home / "console" / "users.json").read_text())["users"]["ig.jo"]["totp"]
    assert factor["secret"] == kept
    assert "secret_sealed" not in factor


def test_the_console_will_not_start_with_second_factors_its_keystore_cannot_open(
    home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A keystore restored from before its users-totp secret: one line at the start, naming
    the accounts and the keystore, not every officer locked out one by one."""
    FileKeyStore(home / "keys").set_linkage_key()
    add(run_cli, monkeypatch, "ig.jo", "a long enough secret")
    add(run_cli, monkeypatch, "ig.sam", "a long enough secret")
    (home / "keys" / "users-totp.secret").unlink()
    code, _, err = run_cli(["console", "--port", "0", "--no-index"])
    assert code == 2
    assert err.count("\n") == 1
    assert "the second factors of ig.jo, ig.sam are sealed" in err
    assert f"the keystore at {home / 'keys'} has no users-totp secret" in err
    assert not (home / "keys" / "users-totp.secret").exists()  # the console made none


def test_the_console_will_not_seal_plain_second_factors_under_a_key_it_made(
    home: Path, run_cli: Run
) -> None:
    FileKeyStore(home / "keys").set_linkage_key()
    legacy_account(home, "ig.jo")
    code, _, err = run_cli(["console", "--port", "0", "--no-index"])
    assert code == 2
    assert err.count("\n") == 1
    assert "not sealed yet" in err
    assert "'accord keys init --party console'" in err
    assert not (home / "keys" / "users-totp.secret").exists()
    assert "secret_sealed" not in (home / "console" / "users.json").read_text()
