"""Fixtures for envelope tests: a real file keystore in a temporary directory, a fake clock."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from broker.config import EnvelopeSettings
from broker.envelope import Opener, SealedRecord, Sealer
from broker.keys import ALL_PURPOSES, FileKeyStore

T0 = 1_790_000_000.0
INGRESS = "accord.ingress.wmp"
SCHEMA = "contact-event.v1"


class FakeClock:
    """Seconds since the epoch, moved by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> FileKeyStore:
    ks = FileKeyStore(tmp_path / "keys", create=True, clock=clock)
    for party in ("wmp", "swbh", "worker", "hub-tipton"):
        ks.ensure_party(party, purposes=ALL_PURPOSES)
    return ks


@pytest.fixture
def sealer(store: FileKeyStore, clock: FakeClock) -> Sealer:
    return Sealer("wmp", store, EnvelopeSettings(), clock=clock)


@pytest.fixture
def opener(store: FileKeyStore, clock: FakeClock) -> Opener:
    return Opener("worker", store, clock=clock)


SealFn = Callable[..., SealedRecord]


@pytest.fixture
def seal(sealer: Sealer) -> SealFn:
    """Seal a payload from wmp to the worker on wmp's ingress topic, with a fresh event id."""

    def _seal(payload: bytes = b'{"type":"police.domestic_incident"}', **kw: str) -> SealedRecord:
        args = {
            "event_id": str(uuid.uuid4()),
            "recipient": "worker",
            "schema": SCHEMA,
            "topic": INGRESS,
        } | kw
        return sealer.seal(payload, **args)

    return _seal
