"""Two consoles on one host against a real Kafka: with instances of their own they write
their look-ups side by side, every page served and both chains verifying; on one chain, the
console taken over says so plainly (not "the audit topic is unreachable") and stops, and
the other goes on."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from aiokafka.errors import TopicAlreadyExistsError
from argon2 import PasswordHasher
from structlog.testing import capture_logs

from broker.audit import AuditKind, KeystoreAuditVerifier
from broker.config import ConsoleSettings, Settings
from broker.console import ConsoleRun, TotpBox, UserFile, console_chain, run_console
from broker.console._instance import fenced_reason
from broker.devkafka import free_port
from broker.errors import Fenced
from broker.governance import (
    AuditStore,
    Indexer,
    open_store,
    read_topic,
    signed_chains,
    verify_records,
)
from broker.keys import FileKeyStore
from broker.topics import AUDIT
from broker.webauth import device_key
from tests.kafka_helpers import clients, create_topics

pytestmark = pytest.mark.kafka

OFFICER = "ig.jo"
PASSWORD = "a long synthetic passphrase"
PAGES = ("/", "/agreements", "/overrides")


@pytest.fixture
def store(audit_home: Path) -> Iterator[AuditStore]:
    s = open_store(None, home=audit_home)
    yield s
    s.close()


@pytest.fixture
async def audit_topic(kafka_bootstrap: str) -> str:
    """``accord.audit`` on the session's Kafka, which may not have it yet: the consoles
    write there. Other tests' chains may be on it too; each test here writes its own."""
    with contextlib.suppress(TopicAlreadyExistsError):
        await create_topics(kafka_bootstrap, [AUDIT])
    return AUDIT


@pytest.fixture
def officer_home(audit_home: Path, keys: FileKeyStore) -> Path:
    """The console's accounts file with one officer (cheap Argon2: sign-in is not tested)."""
    users = Settings(home=audit_home).console_users_file
    device_key(keys, "console", users, create=True)
    UserFile(
        users,
        box=TotpBox.from_keystore(keys, "console", create=True),
        hasher=PasswordHasher(time_cost=1, memory_cost=64, parallelism=1),
    ).add(OFFICER, PASSWORD)
    return audit_home


def instance(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"  # apart from earlier runs' on the same topic


@contextlib.asynccontextmanager
async def console(
    home: Path, store: AuditStore, bootstrap: str, name: str | None
) -> AsyncIterator[tuple[ConsoleRun, asyncio.Task[None]]]:
    """``accord console --instance NAME`` in this process, on ports of its own."""
    settings = Settings(home=home, console=ConsoleSettings(port=0, metrics_port=free_port()))
    runs: list[ConsoleRun] = []
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_console(settings, store, clients(bootstrap), policy=None, index=False,
                    started=runs.append, stop=stop, instance=name)
    )  # fmt: skip
    try:
        for _ in range(200):
            if runs or task.done():
                break
            await asyncio.sleep(0.05)
        assert runs, task.result() if task.done() else "the console did not start"
        yield runs[0], task
    finally:
        stop.set()
        with contextlib.suppress(Fenced):
            await asyncio.wait_for(task, 30)


@contextlib.asynccontextmanager
async def signed_in(run: ConsoleRun) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=run.url, timeout=30) as client:
        login = await client.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', login.text)
        assert token is not None, login.text
        form = {"username": OFFICER, "password": PASSWORD, "csrf": token.group(1)}
        assert (await client.post("/login", data=form)).status_code == 303
        yield client


async def verified(bootstrap: str, verifier: KeystoreAuditVerifier, *chains: str) -> dict[str, Any]:
    """What ``accord audit verify --from-topic`` finds of ``chains``: each one's look-ups."""
    mine = [
        m for m in await read_topic(clients(bootstrap)) if m.key in {c.encode() for c in chains}
    ]
    topic = signed_chains(mine, verifier)
    summary = verify_records(topic, verifier)  # raises ChainBroken unless each chain is whole
    assert (summary.chains, summary.unsigned) == (len(chains), 0)
    return {c: [r for r in topic.chains[c] if r.kind is AuditKind.CONSOLE_QUERY] for c in chains}


async def test_two_consoles_with_instances_of_their_own_write_side_by_side_without_a_503(
    *, officer_home: Path, store: AuditStore, kafka_bootstrap: str, audit_topic: str,
    verifier: KeystoreAuditVerifier,
) -> None:  # fmt: skip
    a, b = instance("a"), instance("b")
    async with (
        console(officer_home, store, kafka_bootstrap, a) as (run_a, _),
        console(officer_home, store, kafka_bootstrap, b) as (run_b, _),
        signed_in(run_a) as on_a,
        signed_in(run_b) as on_b,
    ):
        assert (run_a.chain, run_b.chain) == (console_chain(a), console_chain(b))
        pages = await asyncio.gather(
            *[c.get(p) for _ in range(3) for p in PAGES for c in (on_a, on_b)]
        )
        assert [r.status_code for r in pages] == [200] * len(pages)
        queries = await verified(kafka_bootstrap, verifier, run_a.chain, run_b.chain)
        assert {c: len(q) for c, q in queries.items()} == {run_a.chain: 9, run_b.chain: 9}
        # The index, as the indexer fills it, and so the chains page, lists both.
        await Indexer(store, verifier, clients(kafka_bootstrap)).run(follow=False)
        chains_page = (await on_a.get("/chains")).text
        for chain in (run_a.chain, run_b.chain):
            assert f'data-chain="{chain}"' in chains_page


async def test_a_console_whose_chain_another_takes_over_says_so_and_stops_and_the_other_goes_on(
    *, officer_home: Path, store: AuditStore, kafka_bootstrap: str, audit_topic: str,
    verifier: KeystoreAuditVerifier,
) -> None:  # fmt: skip
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    same = instance("same")
    with capture_logs() as logs:
        async with (
            console(officer_home, store, kafka_bootstrap, same) as (run_a, task_a),
            console(officer_home, store, kafka_bootstrap, same) as (run_b, _),
            signed_in(run_a) as on_a,
            signed_in(run_b) as on_b,
        ):
            assert (await on_a.get("/")).status_code == 200
            assert (await on_b.get("/")).status_code == 200  # its writer fences a's
            taken = await on_a.get("/agreements")
            assert taken.status_code == 503
            assert "Another console took over this console&#39;s audit log" in taken.text
            assert run_a.chain in taken.text
            assert "accord console --instance NAME" in taken.text
            assert "unreachable" not in taken.text
            with pytest.raises(Fenced) as stopped:
                await asyncio.wait_for(task_a, 30)
            assert str(stopped.value) == fenced_reason(run_a.chain)
            # b keeps its chain: a never takes it back.
            for page in PAGES:
                assert (await on_b.get(page)).status_code == 200
    said = [e for e in logs if e["event"] in {"console_fenced", "console_audit_unavailable"}]
    assert [(e["event"], e["chain"]) for e in said] == [("console_fenced", run_a.chain)]
    queries = await verified(kafka_bootstrap, verifier, run_a.chain)
    assert len(queries[run_a.chain]) == 1 + 1 + 3  # a's first page, b's four
    gc.collect()  # a future nobody retrieved is reported when it is collected
    await asyncio.sleep(0)
    loop.set_exception_handler(None)
    assert [c.get("message") for c in reported] == []
