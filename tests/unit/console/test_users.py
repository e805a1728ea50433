"""Console accounts: Argon2id hashes in a private file, and the sign-in throttle."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from broker.console import UserFile
from broker.console._users import SignInThrottle
from broker.errors import ConfigError, UsageError

FAST = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)


def test_a_password_is_stored_only_as_an_argon2id_hash_in_a_private_file(tmp_path: Path) -> None:
    users = UserFile(tmp_path / "console" / "users.json", hasher=FAST)
    users.add("ig.jo", "a long enough secret")
    text = users.path.read_text()
    assert "a long enough secret" not in text
    assert "$argon2id$" in text
    assert stat.S_IMODE(users.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(users.path.parent.stat().st_mode) == 0o700


def test_only_the_right_password_verifies(tmp_path: Path) -> None:
    users = UserFile(tmp_path / "users.json", hasher=FAST)
    users.add("ig.jo", "a long enough secret")
    assert users.verify("ig.jo", "a long enough secret")
    assert not users.verify("ig.jo", "a long enough secreT")
    assert not users.verify("nobody", "a long enough secret")
    assert not users.verify("NOT A NAME!", "a long enough secret")


def test_an_existing_account_is_replaced_only_on_request(tmp_path: Path) -> None:
    users = UserFile(tmp_path / "users.json", hasher=FAST)
    users.add("ig.jo", "first password!")
    with pytest.raises(UsageError, match="exists"):
        users.add("ig.jo", "second password!")
    users.add("ig.jo", "second password!", replace=True)
    assert users.verify("ig.jo", "second password!")
    assert not users.verify("ig.jo", "first password!")


@pytest.mark.parametrize(
    ("name", "password", "match"),
    [("IG Jo", "long enough pw", "user name"), ("x", "long enough pw", "user name"),
     ("ig.jo", "short", "password"), ("ig.jo", "x" * 2000, "password")],
)  # fmt: skip
def test_bad_names_and_passwords_are_refused(
    tmp_path: Path, name: str, password: str, match: str
) -> None:
    users = UserFile(tmp_path / "users.json", hasher=FAST)
    with pytest.raises(UsageError, match=match):
        users.add(name, password)
    assert not users.path.exists()


def test_a_hash_with_old_parameters_is_upgraded_at_sign_in(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    UserFile(path, hasher=FAST).add("ig.jo", "a long enough secret")
    old = path.read_text()
    stronger = PasswordHasher(time_cost=2, memory_cost=128, parallelism=1)
    assert UserFile(path, hasher=stronger).verify("ig.jo", "a long enough secret")
    assert path.read_text() != old
    assert "m=128,t=2" in path.read_text()


def test_a_damaged_accounts_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="console accounts file"):
        UserFile(path, hasher=FAST).verify("ig.jo", "whatever password")


def test_removing_an_account(tmp_path: Path) -> None:
    users = UserFile(tmp_path / "users.json", hasher=FAST)
    users.add("ig.jo", "a long enough secret")
    users.remove("ig.jo")
    assert not users.exists("ig.jo")
    with pytest.raises(UsageError, match="no console user"):
        users.remove("ig.jo")


def test_the_throttle_locks_after_the_limit_and_forgets_after_the_lockout() -> None:
    now = [datetime(2026, 12, 1, tzinfo=UTC)]
    throttle = SignInThrottle(limit=3, lockout=timedelta(minutes=5), clock=lambda: now[0])
    for _ in range(2):
        assert throttle.attempt("ig.jo")
    assert not throttle.locked("ig.jo")
    assert throttle.attempt("ig.jo")
    assert throttle.locked("ig.jo")
    assert not throttle.attempt("ig.jo")
    assert not throttle.locked("ig.sam")  # per account
    now[0] += timedelta(minutes=5)
    assert not throttle.locked("ig.jo")


def test_a_success_resets_the_count() -> None:
    throttle = SignInThrottle(limit=2, lockout=timedelta(minutes=5))
    throttle.attempt("ig.jo")
    throttle.succeeded("ig.jo")
    throttle.attempt("ig.jo")
    assert not throttle.locked("ig.jo")
