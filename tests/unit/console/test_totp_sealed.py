"""TOTP secrets rest sealed in the users file, under a key from the owner's keystore."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
from argon2 import PasswordHasher

from broker.console import TotpBox, UserFile
from broker.crypto import random_bytes
from broker.errors import ConfigError
from broker.keys import FileKeyStore

FAST = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
PW = "a long enough secret"
NOW = datetime(2026, 12, 1, 9, 0, 10, tzinfo=UTC)
STEP = timedelta(seconds=30)
BASE32_RUN = re.compile(r"[A-Z2-7]{16,}")


@pytest.fixture
def keys(tmp_path: Path) -> FileKeyStore:
    return FileKeyStore(tmp_path / "keys" / "console", create=True)


def console_users(path: Path, keys: FileKeyStore) -> UserFile:
    return UserFile(path, box=TotpBox.from_keystore(keys, "console", create=True), hasher=FAST)


def enrol(users: UserFile, name: str = "ig.jo") -> pyotp.TOTP:
    users.add(name, PW, totp=True)
    enrolment = users.totp_enrolment(name)
    assert enrolment is not None
    return pyotp.TOTP(enrolment.secret)


def stored(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_the_users_file_holds_no_base32_secret_after_enrolment(
    tmp_path: Path, keys: FileKeyStore
) -> None:
    users = console_users(tmp_path / "users.json", keys)
    totp = enrol(users)
    text = users.path.read_text()
    assert totp.secret not in text
    factor = stored(users.path)["users"]["ig.jo"]["totp"]
    assert set(factor) == {"secret_sealed", "enrolled_at"}
    assert factor["secret_sealed"].startswith("v1:")
    assert not BASE32_RUN.search(json.dumps(factor))
    assert (keys.path / "users-totp.secret").is_file()  # the key is the keystore's


def test_sign_in_with_a_code_works_through_the_sealed_secret(
    tmp_path: Path, keys: FileKeyStore
) -> None:
    users = console_users(tmp_path / "users.json", keys)
    totp = enrol(users)
    assert users.authenticate("ig.jo", PW, totp.at(NOW), now=NOW)
    assert not users.authenticate("ig.jo", PW, totp.at(NOW), now=NOW)  # taken once only
    # Another process (the CLI beside the console) opens it with the same keystore.
    again = console_users(users.path, FileKeyStore(keys.path))
    assert again.authenticate("ig.jo", PW, totp.at(NOW + STEP), now=NOW + STEP)
    assert "secret" not in stored(users.path)["users"]["ig.jo"]["totp"]


def write_legacy(path: Path) -> str:
    """A users file as Accord wrote it before secrets were sealed: the secret in base32."""
    secret = pyotp.random_base32()
    jo = {
        "hash": FAST.hash(PW),
        "created_at": "2026-11-02T10:00:00+00:00",
        "totp": {"secret": secret, "enrolled_at": "2026-11-02T10:00:00+00:00"},
    }
    path.write_text(json.dumps({"format": 1, "owner": "console", "users": {"ig.jo": jo}}))
    path.chmod(0o600)
    return secret


def test_a_plain_secret_from_before_still_signs_in_and_is_sealed_by_that_write(
    tmp_path: Path, keys: FileKeyStore
) -> None:
    path = tmp_path / "users.json"
    secret = write_legacy(path)
    users = console_users(path, keys)
    enrolment = users.totp_enrolment("ig.jo")
    assert enrolment is not None
    assert enrolment.secret == secret
    assert secret in path.read_text()  # reading alone does not rewrite the file
    totp = pyotp.TOTP(secret)
    assert users.authenticate("ig.jo", PW, totp.at(NOW), now=NOW)  # writes last_step
    assert secret not in path.read_text()
    factor = stored(path)["users"]["ig.jo"]["totp"]
    assert "secret" not in factor
    assert factor["last_step"] == totp.timecode(NOW)
    assert users.authenticate("ig.jo", PW, totp.at(NOW + STEP), now=NOW + STEP)


def test_a_plain_secret_is_sealed_by_any_write_of_the_file(
    tmp_path: Path, keys: FileKeyStore
) -> None:
    path = tmp_path / "users.json"
    secret = write_legacy(path)
    users = console_users(path, keys)
    users.add("ig.sam", "another long secret", totp=False)
    assert secret not in path.read_text()
    assert users.authenticate("ig.jo", PW, pyotp.TOTP(secret).at(NOW), now=NOW)


def test_a_secret_copied_to_another_account_does_not_open(
    tmp_path: Path, keys: FileKeyStore
) -> None:
    users = console_users(tmp_path / "users.json", keys)
    jo = enrol(users)
    enrol(users, "ig.sam")
    data = stored(users.path)
    copied = data["users"]["ig.jo"]["totp"]["secret_sealed"]
    data["users"]["ig.sam"]["totp"]["secret_sealed"] = copied
    users.path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"second factor of ig\.sam does not open") as refused:
        users.authenticate("ig.sam", PW, jo.at(NOW), now=NOW)
    message = str(refused.value)
    assert jo.secret not in message
    assert copied.removeprefix("v1:") not in message
    assert not BASE32_RUN.search(message)
    # To someone without the password it is an ordinary refusal: no sign the account exists.
    assert not users.authenticate("ig.sam", "the wrong password", jo.at(NOW), now=NOW)
    assert users.authenticate("ig.jo", PW, jo.at(NOW), now=NOW)  # the original still opens


def test_a_secret_copied_into_another_owners_file_does_not_open(tmp_path: Path) -> None:
    """One keystore for everything (ACCORD_KEYSTORE__PATH): the console and a desk share its
    users-totp secret, and the owner in the associated data still keeps their files apart."""
    shared = FileKeyStore(tmp_path / "keys", create=True)
    console = console_users(tmp_path / "console" / "users.json", shared)
    totp = enrol(console)
    desk = UserFile(
        tmp_path / "desk" / "users.json",
        box=TotpBox.from_keystore(shared, "desk:sandwell-coord", create=True),
        hasher=FAST,
    )
    desk.add("ig.jo", PW, totp=True)
    data = stored(desk.path)
    sealed = stored(console.path)["users"]["ig.jo"]["totp"]["secret_sealed"]
    data["users"]["ig.jo"]["totp"]["secret_sealed"] = sealed
    desk.path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="does not open") as refused:
        desk.totp_enrolment("ig.jo")
    assert totp.secret not in str(refused.value)
    with pytest.raises(ConfigError, match="does not open"):
        desk.authenticate("ig.jo", PW, totp.at(NOW), now=NOW)


def test_another_keystores_box_refuses_clearly(tmp_path: Path, keys: FileKeyStore) -> None:
    users = console_users(tmp_path / "users.json", keys)
    totp = enrol(users)
    other = console_users(users.path, FileKeyStore(tmp_path / "other", create=True))
    with pytest.raises(ConfigError) as refused:
        other.totp_enrolment("ig.jo")
    message = str(refused.value)
    assert message.startswith(f"{users.path}: the second factor of ig.jo does not open")
    assert "users-totp" in message
    assert totp.secret not in message
    with pytest.raises(ConfigError, match="does not open"):
        other.authenticate("ig.jo", PW, totp.at(NOW), now=NOW)


@pytest.mark.parametrize(
    ("sealed", "match"),
    [
        ("v2:AAAA", "a format this Accord does not read"),
        ("JBSWY3DPEHPK3PXP", "a format this Accord does not read"),  # a plain secret
        ("v1:not base64!", "does not open"),
        ("v1:", "does not open"),
        ("v1:AAAA", "does not open"),  # shorter than a nonce
    ],
)
def test_a_damaged_sealed_secret_is_refused(sealed: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        TotpBox(random_bytes(32), "console").open("ig.jo", sealed)


def test_an_altered_sealed_secret_does_not_open() -> None:
    box = TotpBox(random_bytes(32), "console")
    sealed = box.seal("ig.jo", pyotp.random_base32())
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(ConfigError, match="does not open"):
        box.open("ig.jo", flipped)


def test_a_box_says_whose_it_is_and_never_its_key() -> None:
    key = random_bytes(32)
    box = TotpBox(key, "desk:sandwell-coord")
    assert repr(box) == "TotpBox(owner='desk:sandwell-coord')"
    assert key.hex() not in repr(box)
    with pytest.raises(ConfigError):
        TotpBox(key[:16], "console")
