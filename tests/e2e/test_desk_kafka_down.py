"""With Kafka down, a desk's record page says at once that it cannot record the access, shows
no data, and the access it could not record is never recorded: not when Kafka comes back,
not after aiokafka's retries would have run out.

The project's bundle on a secured broker of this module's own (so the desk's transactional
ids meet the party's real ACLs); the worker runs as ``accord worker`` and turns each access
acknowledgement into an ``opened`` audit record; the co-ordinating team's desk runs in this
process with a 3-second send limit. The police's incidents reach the team's desk; Kafka
stops; a record page answers 503 within the limit; Kafka comes back; the page is asked
for again until it shows (its first asks may still fail while Kafka's transaction
coordinator loads). Then only the views that showed data are in the audit log.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from broker.audit import AuditKind, AuditRecord
from broker.config import DeskSettings, KeyProtection, KeystoreSettings, Settings
from broker.desk import open_desk_store, run_desk
from broker.devkafka import EmbeddedKafka
from broker.keys import FileKeyStore
from broker.sdk import Publisher
from broker.webauth import TotpBox, UserFile
from tests.e2e.worker_proc import (
    POLICIES,
    WorkerProcess,
    incidents,
    predicted,
    prepared,
    read_audit,
)
from tests.kafka_helpers import clients, settings_as, tries_within

pytestmark = pytest.mark.slow

TEAM, USER, PASSWORD = "sandwell-coord", "kim.ward", "a long synthetic passphrase"
LIMIT = 3.0
# aiokafka's request timeout (40 s) is the longest any of its waits runs before it tries
# again; a send left pending would have landed well within it.
AIOKAFKA_REQUEST_TIMEOUT = 40.0


def _opened(audit: list[AuditRecord], event_id: str) -> list[AuditRecord]:
    return [r for r in audit if r.kind is AuditKind.OPENED and r.event_id == event_id
            and r.data.get("by") == USER]  # fmt: skip


async def _signed_in(url: str) -> httpx.AsyncClient:
    browser = httpx.AsyncClient(base_url=url, timeout=120)
    page = (await browser.get("/login")).text
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    form = {"username": USER, "password": PASSWORD, "csrf": found.group(1)}
    assert (await browser.post("/login", data=form)).status_code == 303
    return browser


async def test_kafka_down_a_record_page_fails_within_the_limit_its_access_never_recorded(  # noqa: PLR0915  # one story
    isolated_kafka: EmbeddedKafka, tmp_path: Path
) -> None:
    bootstrap = isolated_kafka.bootstrap
    policy, keys = await prepared(bootstrap, tmp_path)
    events = incidents(6, seed=7)
    expected, _ = predicted(policy, events)
    ours = list(expected.get(TEAM, {}))
    assert len(ours) >= 2, "the team must receive two incidents"
    first, second = ours[:2]
    incident = next(e for e in events if e["event_id"] == first)
    family = incident["subjects"][0]["family_name"]
    settings = Settings(
        home=tmp_path, kafka=settings_as(bootstrap, TEAM),
        keystore=KeystoreSettings(path=keys.path, protection=KeyProtection.NONE),
        desk=DeskSettings(port=0, send_timeout_seconds=LIMIT),
    )  # fmt: skip
    box = TotpBox.from_keystore(
        FileKeyStore(settings.keystore_path(TEAM)), f"desk:{TEAM}", create=True
    )
    UserFile(settings.desk_users_file(TEAM), box=box).add(USER, PASSWORD)
    store = open_desk_store(None, home=tmp_path, party=TEAM)
    worker = WorkerProcess(tmp_path, keys, bootstrap, POLICIES)
    worker.start()
    stop = asyncio.Event()
    started: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    desk = asyncio.create_task(
        run_desk(settings, TEAM, policy, store, clients(bootstrap, TEAM), stop=stop,
                 started=lambda run: started.set_result(run.url))
    )  # fmt: skip
    browser = None
    try:
        async with Publisher("wmp", keys, clients(bootstrap, "wmp")) as pub:
            await pub.publish_many(events)
        url = await asyncio.wait_for(started, 120)
        for _ in range(240):
            if store.record(first) and store.record(second):
                break
            assert worker.alive(), worker.tail()
            await asyncio.sleep(0.5)
        browser = await _signed_in(url)
        t0 = time.monotonic()
        shown = await browser.get(f"/record/{second}")
        print(f"a record page with Kafka up: {time.monotonic() - t0:.3f} s")  # noqa: T201  # -s runs
        assert shown.status_code == 200, shown.text
        shows = 1

        await asyncio.to_thread(isolated_kafka.stop)
        for _ in range(2):  # the second meets the producer the first abandoned, rebuilt
            t0 = time.monotonic()
            refused = await browser.get(f"/record/{first}")
            took = time.monotonic() - t0
            assert refused.status_code == 503, refused.text
            assert "did not confirm that it recorded your access" in refused.text
            for field in (incident["reference"], incident["summary"], family):
                assert field not in refused.text  # no data
            assert took < LIMIT + 2.0, f"the page took {took:.1f} s with Kafka down"
        await asyncio.to_thread(isolated_kafka.start)
        back_at = time.monotonic()

        # Kafka's transaction coordinator needs a moment: the page fails (and records
        # nothing) until it answers. Each failed ask is counted out of the audit below.
        for _ in range(60):
            if not worker.alive():  # crash-only, as in test_broker_restart
                worker.start()
            page = await browser.get(f"/record/{second}")
            if page.status_code == 200:
                shows += 1
                break
            assert page.status_code == 503, page.text
            await asyncio.sleep(1.0)
        assert shows == 2, "the page never showed again once Kafka was back"

        audit: list[AuditRecord] = []
        for _ in tries_within(480):
            if not worker.alive():
                worker.start()
            audit = await read_audit(bootstrap)
            if len(_opened(audit, second)) >= shows:
                break
            await asyncio.sleep(0.5)
        assert len(_opened(audit, second)) == shows, worker.tail()
        # Past every retry aiokafka would make of a send left pending, and past the
        # desk's transaction timeout: still nothing for the page that showed nothing.
        await asyncio.sleep(max(0.0, AIOKAFKA_REQUEST_TIMEOUT + 5 - (time.monotonic() - back_at)))
        audit = await read_audit(bootstrap)
        assert _opened(audit, first) == [], [r.data for r in _opened(audit, first)]
        assert len(_opened(audit, second)) == shows
    finally:
        if browser is not None:
            await browser.aclose()
        stop.set()
        await asyncio.wait_for(desk, 60)
        store.close()
        worker.stop()
