"""A sign-in or a change of password whose password was right is not refused because
another sign-in upgraded the account's hash (Argon2's parameters raised) while it was being
checked: the upgrade is the same credential, its stamp unchanged (review r46e 4)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

from broker.webauth import TotpBox, UserFile

OLD = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
NEW = PasswordHasher(time_cost=2, memory_cost=128, parallelism=1)
NAME = "kim.ward"
PASSWORD = "a long enough secret"


def _upgraded_between(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> UserFile:
    """An account hashed with the old parameters, and a process of the new ones whose every
    check is followed, before it is accepted, by another process's sign-in (which upgrades)."""
    path = tmp_path / "users.json"
    box = TotpBox(b"k" * 32, "console")
    UserFile(path, box=box, hasher=OLD).add(NAME, PASSWORD)
    users = UserFile(path, box=box, hasher=NEW)
    other = UserFile(path, box=box, hasher=NEW)
    check: Callable[..., Any] = users._check

    def then_another_signs_in(*args: Any) -> Any:
        found = check(*args)
        before = json.loads(path.read_text())["users"][NAME]["hash"]
        assert other.sign_in(NAME, PASSWORD, None) is not None
        assert json.loads(path.read_text())["users"][NAME]["hash"] != before  # upgraded
        return found

    monkeypatch.setattr(users, "_check", then_another_signs_in)
    return users


def test_a_sign_in_is_taken_though_another_upgraded_the_hash_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = _upgraded_between(tmp_path, monkeypatch)
    stamp = users.stamp(NAME)
    assert users.sign_in(NAME, PASSWORD, None) == stamp


def test_a_change_of_password_is_taken_though_another_upgraded_the_hash_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = _upgraded_between(tmp_path, monkeypatch)
    stamp = users.stamp(NAME)
    new = users.change_password(NAME, PASSWORD, None, "a different long passphrase")
    assert new is not None
    assert new != stamp
    assert users.ended_by_owner(NAME, stamp)
    monkeypatch.undo()
    assert users.verify(NAME, "a different long passphrase")
    assert not users.verify(NAME, PASSWORD)


def test_a_reset_meanwhile_still_refuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stamp changes at a reset: the password checked is no longer the account's."""
    path = tmp_path / "users.json"
    box = TotpBox(b"k" * 32, "console")
    users = UserFile(path, box=box, hasher=OLD)
    users.add(NAME, PASSWORD)
    check: Callable[..., Any] = users._check

    def then_reset(*args: Any) -> Any:
        found = check(*args)
        UserFile(path, box=box, hasher=OLD).add(NAME, PASSWORD, replace=True)
        return found

    monkeypatch.setattr(users, "_check", then_reset)
    assert users.sign_in(NAME, PASSWORD, None) is None
