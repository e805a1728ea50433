"""An account's replaced stamps, as a hand edit may leave them in the users file: what is
not a list is none, an entry not a pair is absent; never a TypeError (a 500 at every request
of the account's sessions, and at ``add-user --reset``: review r46e 5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from broker.webauth import TotpBox, UserFile

FAST = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
NAME = "kim.ward"


def _edited(tmp_path: Path, ended: object) -> UserFile:
    users = UserFile(tmp_path / "users.json", box=TotpBox(b"k" * 32, "console"), hasher=FAST)
    users.add(NAME, "a long enough secret")
    data = json.loads(users.path.read_text())
    data["users"][NAME]["ended_stamps"] = ended
    users.path.write_text(json.dumps(data))
    return users


@pytest.mark.parametrize("ended", [None, "owner", 7, {"a": "owner"}])
def test_replaced_stamps_that_are_not_a_list_are_none(tmp_path: Path, ended: object) -> None:
    users = _edited(tmp_path, ended)
    assert not users.ended_by_owner(NAME, "0" * 32)  # what Guard.session asks
    old = users.stamp(NAME)
    users.add(NAME, "another long enough secret", replace=True)  # add-user --reset
    assert json.loads(users.path.read_text())["users"][NAME]["ended_stamps"] == [[old, "admin"]]
    assert users.verify(NAME, "another long enough secret")


def test_an_entry_that_is_not_a_pair_is_absent(tmp_path: Path) -> None:
    users = _edited(tmp_path, [["x"], 5, None, ["a", "b", "c"], ["s1", "owner"]])
    assert users.ended_by_owner(NAME, "s1")
    assert not users.ended_by_owner(NAME, "x")
    old = users.stamp(NAME)
    users.add(NAME, "another long enough secret", replace=True)
    ended = json.loads(users.path.read_text())["users"][NAME]["ended_stamps"]
    assert ended == [["s1", "owner"], [old, "admin"]]
