"""Sign-in takes as long whatever the answer: timing must not tell which accounts exist.

Measured through the real app, as ratios of medians in one run, never against a wall-clock
bound: a throttled account, an unknown name and a wrong password each cost one Argon2 check.
A throttle that answered without it (as a hard lockout once did, ~30x sooner) shows up as a
ratio far below one.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from broker.audit import AuditRecord
from broker.console import TotpBox, UserFile
from broker.keys import FileKeyStore
from tests.unit.console.conftest import OFFICER, PASSWORD, csrf_of

ROUNDS = 9


@pytest.fixture
def users(audit_home: Path, keys: FileKeyStore) -> UserFile:
    # Costly enough (~10-30 ms) that the hash, not the request around it, is what is timed;
    # cheap enough for a unit test. Production's defaults cost more, which only widens a gap.
    u = UserFile(
        audit_home / "console" / "users.json",
        box=TotpBox.from_keystore(keys, "console", create=True),
        hasher=PasswordHasher(time_cost=2, memory_cost=16 * 1024, parallelism=1),
    )
    u.add(OFFICER, PASSWORD, totp=True)
    for i in range(ROUNDS):
        u.add(f"ig.officer{i}", PASSWORD)
    return u


def test_throttled_unknown_and_wrong_password_answers_take_the_same_time(
    make_client: Callable[..., TestClient], indexed: list[AuditRecord]
) -> None:
    client = make_client(sign_in_failures_per_client=1000, sign_in_failures_per_account=2)
    token = csrf_of(client.get("/login").text)

    def timed(name: str, password: str) -> float:
        form = {"username": name, "password": password, "code": "123456", "csrf": token}
        start = time.perf_counter()
        r = client.post("/login", data=form)
        elapsed = time.perf_counter() - start
        assert r.status_code == 401
        return elapsed

    for _ in range(3):  # the officer's account is throttled from here on (the clock stands)
        timed(OFFICER, "a wrong password")
    throttle = client.app.state.console.throttle  # type: ignore[attr-defined]
    assert throttle.attempt(OFFICER, "testclient").refused  # this client, at this account
    throttled, unknown, wrong = [], [], []
    for i in range(ROUNDS):  # interleaved, so the machine's load falls on all three alike
        throttled.append(timed(OFFICER, PASSWORD))
        unknown.append(timed(f"ig.nobody{i}", PASSWORD))
        wrong.append(timed(f"ig.officer{i}", "a wrong password"))  # one failure each: not slowed
    base = statistics.median(wrong)
    ratios = {
        "throttled": statistics.median(throttled) / base,
        "unknown": statistics.median(unknown) / base,
    }
    assert all(0.5 < r < 2 for r in ratios.values()), ratios
