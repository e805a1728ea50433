"""A desk over a real SQLite store, with fakes for its two seams to Kafka (acks, publisher)."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from broker.config import DeskSettings, SchoolCalendar
from broker.desk import DeskDeps, DeskStore, create_desk_app, open_desk_store
from broker.errors import TransportError
from broker.events import Delivery
from broker.keys import FileKeyStore
from broker.webauth import TotpBox, UserFile
from tests.unit.audit.conftest import run_cli  # noqa: F401  # a re-exported pytest fixture

USER = "kim.ward"
PASSWORD = "a long synthetic passphrase"
SECRET = b"k" * 32
DEVICE_KEY = b"d" * 32
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def old_key(secret: bytes, subject: Mapping[str, Any]) -> str | None:
    """child_key as it was until 2026-12-05: names only trimmed and case-folded."""
    nhs = subject.get("nhs_number")
    if nhs:
        material = f"nhs\x00{nhs}"
    else:
        given, family, dob = (subject.get(k) for k in ("given_name", "family_name", "dob"))
        if not (isinstance(given, str) and isinstance(family, str) and given and family and dob):
            return None
        material = f"demo\x00{given.strip().casefold()}\x00{family.strip().casefold()}\x00{dob}"
    return hmac.new(secret, material.encode(), hashlib.sha256).hexdigest()[:32]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


class FakeAcks:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []
        self.sends: list[tuple[str, tuple[str, ...]]] = []  # (purpose, event ids) per send
        self.down = False

    async def acknowledge_all(self, event_ids: Sequence[str], *, by: str, purpose: str) -> None:
        if self.down:
            raise TransportError("publishing to accord.access: KafkaConnectionError")
        self.sent.extend((event_id, by, purpose) for event_id in event_ids)
        self.sends.append((purpose, tuple(event_ids)))


class FakePublisher:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def publish(self, event: Mapping[str, Any]) -> None:
        self.events.append(dict(event))


def delivery(
    event_id: str, *, recipient: str = "sandwell-coord", decided_at: datetime = T0,
    **view: Any,
) -> Delivery:  # fmt: skip
    base: dict[str, Any] = {
        "event_id": event_id, "type": "police.child_concern", "sender": "wmp",
        "occurred_at": "2026-11-22T21:15:00Z", "reference": "WMP/26/1", "need_level": 3,
        "summary": "Synthetic concern.", "categories": ["domestic_abuse"],
        "subjects": [{"role": "child", "nhs_number": "9993080233", "given_name": "Ruby",
                      "family_name": "Hart", "dob": "2016-02-11", "postcode": "B70 8NR"}],
    }  # fmt: skip
    base.update(view)
    return Delivery(
        event_id=event_id, recipient=recipient, outcome="shared", clauses=("c1",),
        agreements=("a1",), purpose="early_help", lawful_basis={"article6": "public_task"},
        policy_version="sha256:x", decided_at=decided_at, view=base,
    )  # fmt: skip


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 + timedelta(hours=1))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DeskStore]:
    s = open_desk_store(None, home=tmp_path, party="sandwell-coord")
    yield s
    s.close()


@pytest.fixture
def users(tmp_path: Path) -> UserFile:
    keys = FileKeyStore(tmp_path / "keys" / "sandwell-coord", create=True)
    u = UserFile(
        tmp_path / "desk" / "users.json",
        box=TotpBox.from_keystore(keys, "desk:sandwell-coord", create=True),
        hasher=PasswordHasher(time_cost=1, memory_cost=64, parallelism=1),
    )
    u.add(USER, PASSWORD)
    return u


@pytest.fixture
def acks() -> FakeAcks:
    return FakeAcks()


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def make_client(
    store: DeskStore, users: UserFile, acks: FakeAcks, publisher: FakePublisher, clock: Clock
) -> Callable[..., tuple[TestClient, DeskDeps]]:
    def make(
        kind: str = "coordinating_team", party: str = "sandwell-coord", **extra: Any
    ) -> tuple[TestClient, DeskDeps]:
        deps = DeskDeps(
            party=party, party_name=party.title(), kind=kind, store=store, users=users,
            acks=acks, linkage_key=SECRET, device_key=DEVICE_KEY,
            settings=DeskSettings(),
            schools=SchoolCalendar(), publisher=publisher, clock=clock, **extra,
        )  # fmt: skip
        return TestClient(create_desk_app(deps), base_url="http://127.0.0.1:8766"), deps

    return make


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def sign_in(client: TestClient) -> str:
    token = csrf_of(client.get("/login").text)
    r = client.post(
        "/login", data={"username": USER, "password": PASSWORD, "csrf": token},
        follow_redirects=False,
    )  # fmt: skip
    assert r.status_code == 303, r.text
    return csrf_of(client.get("/").text)
