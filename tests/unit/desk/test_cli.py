"""``accord desk add-user --as PARTY`` and ``accord desk --as PARTY`` refusing what cannot
work, each with one line on stderr and a non-zero exit."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from broker.keys import SPECIAL_PRINCIPALS, FileKeyStore
from broker.webauth import TotpBox
from tests.unit.audit.conftest import Run


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    monkeypatch.setenv("ACCORD_KEYSTORE__PATH", str(tmp_path / "keys"))
    return tmp_path


def _party_keystore(home: Path) -> FileKeyStore:
    """The party's keys and the broker's, as if its signed key directory had been imported:
    a desk's subscriber refuses a keystore without the broker's keys."""
    keys = FileKeyStore(home / "keys", create=True)
    keys.ensure_party("cog-tipton")
    keys.ensure_party("worker", purposes=SPECIAL_PRINCIPALS["worker"])
    return keys


def test_add_user_makes_a_party_s_own_account_with_a_second_factor(
    home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = FileKeyStore(home / "keys", create=True)
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough secret\n"))
    code, out, err = run_cli(
        ["desk", "add-user", "--as", "cog-tipton", "sam.okafor", "--password-stdin"]
    )
    assert (code, err) == (0, "")
    assert out.startswith("desk user sam.okafor of cog-tipton created")
    stored = json.loads((home / "desk" / "cog-tipton" / "users.json").read_text())
    assert stored["users"]["sam.okafor"]["hash"].startswith("$argon2id$")
    factor = stored["users"]["sam.okafor"]["totp"]
    assert "secret" not in factor  # sealed under the party's keystore, for the party's desk
    secret = TotpBox.from_keystore(keys, "desk:cog-tipton", create=False).open(
        "sam.okafor", factor["secret_sealed"]
    )
    assert secret in out  # shown this once
    assert "issuer=Accord%20desk%20cog-tipton" in out  # not the governance console's


@pytest.mark.parametrize("name", ["9997672380", "943-476-5919", "07700.900123"])
def test_add_user_refuses_an_nhs_or_telephone_number_as_the_user_name_in_one_line(
    name: str, home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A desk user's name is "opened by" in the audit log: the broker would refuse it there."""
    FileKeyStore(home / "keys", create=True)
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough secret\n"))
    code, out, err = run_cli(["desk", "add-user", "--as", "cog-tipton", name, "--password-stdin"])
    assert code != 0
    [line] = err.strip().splitlines()
    assert "user name: a staff id, never an NHS or telephone number" in line
    assert name not in out + err
    assert not (home / "desk" / "cog-tipton" / "users.json").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["desk", "--as", "nobody"], "no such party"),
        (["desk", "--as", "wmp"], "a desk is for recipients"),
        (["desk", "--as", "cog-tipton"], "no keystore"),  # none yet: not the accounts' fault
        (["desk"], "say whose desk"),
        (["desk", "add-user", "--as", "wmp", "x.y", "--password-stdin"], "for recipients"),
    ],
)
def test_a_desk_that_cannot_work_is_one_line_on_stderr(
    home: Path, run_cli: Run, args: list[str], message: str
) -> None:
    code, _, err = run_cli(args)
    assert code != 0
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_a_keystore_without_the_party_s_key_is_one_line_on_stderr(
    home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough secret\n"))
    code, _, err = run_cli(["desk", "add-user", "--as", "cog-tipton", "sam.x", "--password-stdin"])
    assert code != 0  # the keystore seals the account's second factor
    assert err.count("\n") == 1
    assert "no keystore" in err
    FileKeyStore(home / "keys", create=True).ensure_party("wmp")  # someone else's keys
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough secret\n"))
    assert run_cli(["desk", "add-user", "--as", "cog-tipton", "sam.x", "--password-stdin"])[0] == 0
    code, _, err = run_cli(["desk", "--as", "cog-tipton", "--port", "0"])
    assert code != 0
    assert err.count("\n") == 1
    assert "holds no private key for cog-tipton" in err


def test_a_desk_will_not_start_with_second_factors_its_keystore_cannot_open(
    home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    _party_keystore(home)
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough secret\n"))
    assert run_cli(["desk", "add-user", "--as", "cog-tipton", "sam.x", "--password-stdin"])[0] == 0
    (home / "keys" / "users-totp.secret").unlink()  # a keystore restored from before it
    code, _, err = run_cli(["desk", "--as", "cog-tipton", "--port", "0"])
    assert code != 0
    [line] = [x for x in err.splitlines() if "keystore_unprotected" not in x]  # one line, and
    assert line.startswith("accord: error: ")  # the usual warning of a store without passphrase
    assert "the second factors of sam.x are sealed" in line
    assert "'accord desk add-user --as cog-tipton NAME --reset'" in err
    assert not (home / "keys" / "users-totp.secret").exists()  # the desk made none


def test_add_user_makes_the_desk_s_own_secrets_in_the_party_s_keystore(
    home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    from broker.desk import desk_linkage_key, linkage_secret_name
    from broker.webauth import device_key, device_secret_name

    keys = FileKeyStore(home / "keys", create=True)
    keys.ensure_party("cog-tipton")
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough secret\n"))
    assert run_cli(["desk", "add-user", "--as", "cog-tipton", "sam.x", "--password-stdin"])[0] == 0
    linkage = home / "keys" / f"{linkage_secret_name('cog-tipton')}.secret"
    device = home / "keys" / f"{device_secret_name('desk:cog-tipton')}.secret"
    assert linkage.is_file()
    assert device.is_file()
    users = home / "desk" / "cog-tipton" / "users.json"
    made = desk_linkage_key(keys, party="cog-tipton"), device_key(keys, "desk:cog-tipton", users)
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough secret\n"))
    assert run_cli(["desk", "add-user", "--as", "cog-tipton", "kim.y", "--password-stdin"])[0] == 0
    assert (desk_linkage_key(keys, party="cog-tipton"),
            device_key(keys, "desk:cog-tipton", users)) == made  # fmt: skip


def test_add_user_leaves_an_older_desks_plain_files_and_the_keystore_as_they_are(
    home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """add-user may run where the keystore is held in memory (a pod): secrets moved in there,
    and the files deleted, would be gone at the next restart. The desk and its flag service
    read the files where they are; only keys init moves them in."""
    from broker.desk import desk_linkage_key
    from broker.webauth import device_key

    keys = FileKeyStore(home / "keys", create=True)
    keys.ensure_party("cog-tipton")
    linkage, device = os.urandom(32), os.urandom(32)
    (home / "desk" / "cog-tipton").mkdir(parents=True, mode=0o700)
    plain = {home / "keys" / "desk-linkage.key": linkage,
             home / "desk" / "cog-tipton" / "device-cookie.key": device}  # fmt: skip
    for path, secret in plain.items():
        path.write_bytes(secret)
        path.chmod(0o600)
    before = sorted(p.name for p in (home / "keys").iterdir())
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough secret\n"))
    assert run_cli(["desk", "add-user", "--as", "cog-tipton", "sam.x", "--password-stdin"])[0] == 0
    assert {path: path.read_bytes() for path in plain} == plain
    # Only the second factors' key is new: neither older secret was moved or remade.
    assert sorted(p.name for p in (home / "keys").iterdir()) == sorted(
        [*before, "users-totp.secret"]
    )
    assert desk_linkage_key(keys, party="cog-tipton") == linkage
    users = home / "desk" / "cog-tipton" / "users.json"
    assert device_key(keys, "desk:cog-tipton", users) == device


def test_the_desk_makes_no_device_cookie_key_and_says_it_will_forget_devices(
    home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The desk's twin of the console's: a keystore with the linkage secret but no device
    key (made before enrolment made it, or restored) still serves, and writes none."""
    import socket

    from broker.webauth import device_secret_name

    _party_keystore(home)
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough secret\n"))
    assert run_cli(["desk", "add-user", "--as", "cog-tipton", "sam.x", "--password-stdin"])[0] == 0
    (home / "keys" / f"{device_secret_name('desk:cog-tipton')}.secret").unlink()
    with socket.socket() as taken:  # stops the desk just after it read the key
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run_cli(["desk", "--as", "cog-tipton", "--port", str(port)])
    assert code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in err
    assert not list((home / "keys").glob("device-cookie*"))
    assert not (home / "desk" / "cog-tipton" / "device-cookie.key").exists()
    [warning] = [line for line in err.splitlines() if "device_key_ephemeral" in line]
    assert "accord keys init --party cog-tipton" in warning


def test_a_desk_without_its_linkage_secret_refuses_in_one_line_and_makes_none(
    home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One it made would key children unlike its flag service: the line names the keystore
    and the command that makes it."""
    from broker.desk import linkage_secret_name

    _party_keystore(home)
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough secret\n"))
    assert run_cli(["desk", "add-user", "--as", "cog-tipton", "sam.x", "--password-stdin"])[0] == 0
    own = home / "keys" / f"{linkage_secret_name('cog-tipton')}.secret"
    own.unlink()  # a keystore restored from before it
    code, _, err = run_cli(["desk", "--as", "cog-tipton", "--port", "0"])
    assert code != 0
    [line] = [x for x in err.splitlines() if "keystore_unprotected" not in x]
    assert line.startswith("accord: error: ")
    assert f"the keystore at {home / 'keys'} has no desk linkage secret for cog-tipton" in line
    assert "'accord keys init --party cog-tipton'" in line
    assert not list((home / "keys").glob("desk-linkage*"))


def _enrolled_keystore(home: Path) -> None:
    """The party's keys and linkage secret, as 'accord keys init --party' leaves them."""
    from broker.desk import desk_linkage_key

    keys = _party_keystore(home)
    desk_linkage_key(keys, party="cog-tipton", create=True)


def test_a_desk_starts_without_an_account_and_logs_how_to_make_one(
    home: Path, run_cli: Run
) -> None:
    """It used to refuse (a crash loop in a pod, with nothing to exec add-user into): now it
    goes on, saying how to make the first account (the party, no person), and stops only at
    what really stops it (here, a port already taken)."""
    import socket

    _enrolled_keystore(home)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run_cli(["desk", "--as", "cog-tipton", "--port", str(port)])
    assert code == 2
    assert err.splitlines()[-1].startswith(f"accord: error: cannot listen on 127.0.0.1:{port}")
    [warning] = [json.loads(line) for line in err.splitlines() if "desk_no_accounts" in line]
    assert warning["level"] == "warning"
    assert warning["command"] == "accord desk add-user --as cog-tipton NAME"
    assert set(warning) == {"event", "level", "timestamp", "party", "command"}


def test_a_desk_still_refuses_a_damaged_users_file(home: Path, run_cli: Run) -> None:
    """A file that is there but unreadable is a fault, not a first start."""
    _enrolled_keystore(home)
    (home / "desk" / "cog-tipton").mkdir(parents=True, mode=0o700)
    (home / "desk" / "cog-tipton" / "users.json").write_text("[]")
    code, _, err = run_cli(["desk", "--as", "cog-tipton", "--port", "0"])
    assert code != 0
    assert err.splitlines()[-1].startswith("accord: error: ")
    assert "not a console accounts file" in err.splitlines()[-1]
    assert "desk_no_accounts" not in err


def _no_linkage_secret(home: Path) -> None:
    _party_keystore(home)


def _no_private_key(home: Path) -> None:
    FileKeyStore(home / "keys", create=True).ensure_party("wmp")  # someone else's keys


@pytest.mark.parametrize(
    ("keystore", "message"),
    [
        (_no_linkage_secret, "has no desk linkage secret for cog-tipton"),
        (_no_private_key, "holds no private key for cog-tipton"),
        (_enrolled_keystore, "cannot listen on"),
    ],
)
def test_a_refused_start_leaves_no_desk_store_behind(
    home: Path, run_cli: Run, keystore: Any, message: str
) -> None:
    """The keystore, the linkage secret, the port: each refuses before the store is made, so
    a refused start leaves no ``desk/PARTY.db`` claimed by the party it never served."""
    import socket

    keystore(home)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run_cli(["desk", "--as", "cog-tipton", "--port", str(port)])
    assert code != 0
    assert message in err.splitlines()[-1]
    assert not list((home / "desk").glob("cog-tipton.db*"))
