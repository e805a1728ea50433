"""`accord keys init --party` says what it made besides keys, and only that (names, never
values)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from broker.keys import SPECIAL_PRINCIPALS, TOTP_SECRET_NAME, FileKeyStore

Run = Callable[[list[str]], tuple[int, str, str]]


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ACCORD_KEYSTORE__PASSPHRASE", raising=False)
    monkeypatch.delenv("ACCORD_KEYSTORE__PATH", raising=False)
    monkeypatch.delenv("ACCORD_POLICIES", raising=False)
    monkeypatch.chdir(tmp_path)  # no policies/ here: the party may run a desk
    return tmp_path / "home"


def _secrets(store: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in store.glob("*.secret")}


def test_init_on_a_party_with_keys_but_no_desk_secrets_names_what_it_made(
    tmp_path: Path, run_cli: Run
) -> None:
    """A keystore from before enrolment made the desk's secrets (its keys only): init makes
    them and says so; a second run makes nothing and says nothing more."""
    store = tmp_path / "school"
    FileKeyStore(store, create=True).ensure_party("school-146203")
    argv = ["keys", "init", "--party", "school-146203", "--dir", str(store)]
    code, out, _ = run_cli(argv)
    assert code == 0
    first = out.splitlines()[0]
    assert first == (
        f"keystore {store}: 0 new keys for school-146203; made its desk linkage secret, "
        "second-factor key and known-device key"
    )
    assert len(_secrets(store)) == 3
    code, out, _ = run_cli(argv)
    assert code == 0
    assert out.splitlines() == [f"keystore {store}: 0 new keys for school-146203"]


def test_init_names_only_the_secrets_it_made_and_never_their_values(
    tmp_path: Path, run_cli: Run
) -> None:
    store = tmp_path / "console"
    keys = FileKeyStore(store, create=True)
    keys.ensure_party("console", purposes=SPECIAL_PRINCIPALS["console"])
    keys.local_secret(TOTP_SECRET_NAME)
    code, out, _ = run_cli(["keys", "init", "--party", "console", "--dir", str(store)])
    assert code == 0
    assert out.splitlines()[0] == (
        f"keystore {store}: 0 new keys for console; made its known-device key"
    )
    for value in _secrets(store).values():
        assert value.hex() not in out


def test_init_names_the_older_plain_file_it_moved_in(
    tmp_path: Path, home: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator learns the older file is gone because it is in the keystore now."""
    store = tmp_path / "keys"  # no keys/console yet: the console's keystore is keys itself
    users = tmp_path / "old" / "users.json"
    users.parent.mkdir(mode=0o700)
    plain = users.with_name("device-cookie.key")
    plain.write_bytes(os.urandom(32))
    plain.chmod(0o600)
    monkeypatch.setenv("ACCORD_KEYSTORE__PATH", str(tmp_path / "keys"))
    monkeypatch.setenv("ACCORD_CONSOLE__USERS_FILE", str(users))
    code, out, _ = run_cli(["keys", "init", "--party", "console"])
    assert code == 0
    assert out.splitlines()[0] == (
        f"keystore {store}: 1 new key for console; "
        "made its second-factor key and known-device key; "
        f"moved the older {plain} into it"
    )
    assert not plain.exists()


def test_one_new_key_is_one_new_key(tmp_path: Path, run_cli: Run) -> None:
    code, out, _ = run_cli(["keys", "init", "--party", "console", "--dir", str(tmp_path / "c")])
    assert code == 0
    assert out.startswith(f"keystore {tmp_path / 'c'}: 1 new key for console; made its ")


def test_desk_secrets_made_without_a_bundle_are_said_to_be_for_a_party_of_unknown_kind(
    tmp_path: Path, run_cli: Run
) -> None:
    """With no bundle to say it is an agency, a party gets a desk's secrets (it may run a
    desk); the output says why, and how an agency's keystore is made without them."""
    argv = ["keys", "init", "--party", "wmp", "--dir", str(tmp_path / "wmp")]
    code, out, _ = run_cli(argv)
    assert code == 0
    assert out.splitlines()[1] == (
        "note: wmp's kind is unknown (no policy bundle here), so it got a desk's secrets in "
        "case it runs one; an agency needs none (a new keystore made with --policies DIR "
        "naming it an agency gets none)"
    )
    code, out, _ = run_cli(argv)  # nothing made: nothing to explain
    assert "note:" not in out


def test_a_party_the_bundle_names_a_recipient_gets_its_desk_secrets_with_no_note(
    tmp_path: Path, run_cli: Run
) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "parties.yaml").write_text("parties:\n  hub-a: {name: Hub, kind: hub}\n")
    argv = ["keys", "init", "--party", "hub-a", "--dir", str(tmp_path / "hub-a")]
    code, out, _ = run_cli([*argv, "--policies", str(bundle)])
    assert code == 0
    assert "made its desk linkage secret" in out.splitlines()[0]
    assert "note:" not in out


def test_a_bundle_that_cannot_be_read_is_named_as_the_reason_not_blamed_for_the_party(
    tmp_path: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review s43r1: an unreadable ``parties.yaml`` was reported as a bundle naming no kind
    for the party, though it may well name it an agency."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "parties.yaml").write_text("parties:\n  wmp: {name: Police, kind: agency\n")
    monkeypatch.setenv("ACCORD_POLICIES", str(bundle))
    argv = ["keys", "init", "--party", "wmp", "--dir", str(tmp_path / "wmp")]
    code, out, _ = run_cli(argv)
    assert code == 0
    assert out.splitlines()[1].startswith(
        f"note: wmp's kind is unknown (the bundle {bundle} could not be read here), "
    )
