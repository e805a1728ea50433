"""A console over a real SQLite index of signed audit records, with an in-process audit sink.

The sink is the console's one seam to Kafka: here it appends to a real :class:`ChainWriter`
and files the records in the same index, as the indexer would once it read them back.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from broker.audit import AuditRecord, ChainWriter, KeystoreAuditSigner, KeystoreAuditVerifier
from broker.config import ConsoleSettings
from broker.console import ConsoleDeps, TotpBox, UserFile, create_app
from broker.errors import TransportError
from broker.governance import AuditStore, open_store
from broker.keys import FileKeyStore
from broker.policy import Policy
from broker.principals import Principal
from broker.webauth import device_key
from tests.unit.audit.conftest import (  # noqa: F401  # fixtures, re-exported for this package
    CHILD_NHS,
    T0,
    audit_home,
    index_records,
    keys,
    linker,
    verifier,
    worker_chain,
)

OFFICER = "ig.jo"
PASSWORD = "correct horse battery staple"


class IndexingSink:
    """Appends to a real chain with signed checkpoints, then indexes what it wrote."""

    def __init__(
        self, store: AuditStore, keystore: FileKeyStore, clock: Callable[[], datetime]
    ) -> None:
        self.store = store
        self.verifier = KeystoreAuditVerifier(keystore)
        self.signer = KeystoreAuditSigner(keystore, Principal.CONSOLE)
        self.writer = ChainWriter("console:test", clock=clock)
        self.records: list[AuditRecord] = []
        self.down = False
        self.lagging = False  # written to the log, not yet indexed

    async def append(self, build: Callable[[ChainWriter], list[AuditRecord]]) -> list[AuditRecord]:
        if self.down:
            raise TransportError("writing to accord.audit at 127.0.0.1:1: KafkaConnectionError")
        records = build(self.writer)
        records.append(self.writer.checkpoint(self.signer))
        if self.lagging:
            self.records += records
            return records
        summary = index_records(
            self.store, self.verifier, records, start=10_000 + len(self.records)
        )
        assert summary.breaks == []
        self.records += records
        return records

    def queries(self) -> list[AuditRecord]:
        return [r for r in self.records if r.kind.value == "console_query"]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 + timedelta(hours=6))


@pytest.fixture
def store(audit_home: Path) -> Iterator[AuditStore]:
    s = open_store(None, home=audit_home)
    yield s
    s.close()


@pytest.fixture
def indexed(
    store: AuditStore, verifier: KeystoreAuditVerifier, linker: object, keys: FileKeyStore
) -> list[AuditRecord]:
    records = worker_chain(linker, keys)  # type: ignore[arg-type]  # the Linker fixture
    assert index_records(store, verifier, records).breaks == []
    return records


@pytest.fixture
def users(audit_home: Path, keys: FileKeyStore) -> UserFile:
    # Cheap Argon2 parameters: the tests check our use of it, not its cost.
    u = UserFile(
        audit_home / "console" / "users.json",
        box=TotpBox.from_keystore(keys, "console", create=True),
        hasher=PasswordHasher(time_cost=1, memory_cost=64, parallelism=1),
    )
    u.add(OFFICER, PASSWORD)
    return u


@pytest.fixture
def sink(store: AuditStore, keys: FileKeyStore, clock: Clock) -> IndexingSink:
    return IndexingSink(store, keys, clock)


@pytest.fixture
def make_client(
    store: AuditStore, sink: IndexingSink, users: UserFile, keys: FileKeyStore,
    audit_home: Path, clock: Clock,
) -> Callable[..., TestClient]:  # fmt: skip
    def make(
        *, policy: Policy | None = None, reopen: bool = False, **settings: object
    ) -> TestClient:
        deps = ConsoleDeps(
            store=store, audit=sink, users=users,
            linkage_key=FileKeyStore(audit_home / "keys").linkage_key(),
            # As enrolment made it (the users fixture's add-user).
            device_key=device_key(keys, "console", users.path, create=True),
            verifier=KeystoreAuditVerifier(keys),
            settings=ConsoleSettings(**settings),  # type: ignore[arg-type]  # test overrides
            policy=policy, clock=clock,
            reopen=(lambda: open_store(None, home=audit_home)) if reopen else None,
        )  # fmt: skip
        return TestClient(create_app(deps), base_url="http://127.0.0.1:8765")

    return make


@pytest.fixture
def client(make_client: Callable[..., TestClient], indexed: list[AuditRecord]) -> TestClient:
    return make_client()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def sign_in(
    client: TestClient, name: str = OFFICER, password: str = PASSWORD, code: str | None = None
) -> str:
    """Sign in; return the CSRF token of the signed-in session."""
    token = csrf_of(client.get("/login").text)
    form = {"username": name, "password": password, "csrf": token}
    if code is not None:
        form["code"] = code
    r = client.post("/login", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    return csrf_of(client.get("/subjects").text)


def child_log_page(client: TestClient) -> str:
    """Signed in, the console's page for the audit fixtures' child (CHILD_NHS), looked up for
    a subject access request: the disclosure log as an officer reads it."""
    token = sign_in(client)
    return client.post(
        "/subjects",
        data={"nhs_number": CHILD_NHS, "purpose": "subject_access_request", "csrf": token},
    ).text
