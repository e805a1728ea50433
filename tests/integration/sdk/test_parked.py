"""Through real Kafka: a delivery signed by a broker key the recipient's keystore has not
imported yet (the broker's staged rotation, the hub late with its import) is parked, not
lost: the group commits past it, it survives a restart of the subscriber, and once the signed
key directory naming the key is imported it is handed over, once. The consumer's real
``assignment()`` and ``position()`` decide which parked records it retries."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from broker.config import KemSuite
from broker.kafka import TopicPartition
from broker.keys import (
    FileKeyStore,
    export_entries,
    import_directory,
    init_keystores,
    sign_directory,
)
from broker.sdk import Subscriber, Unopenable
from broker.topics import deliver
from tests.integration.sdk.test_roundtrip import _delivery, produce, seal_delivery
from tests.kafka_helpers import clients

pytestmark = pytest.mark.usefixtures("sdk_topics")


class _World:
    """One keystore per principal, wired with a signed directory (``accord keys init``)."""

    def __init__(self, root: Path, party: str, bootstrap: str) -> None:
        self.root, self.party, self.bootstrap = root, party, bootstrap
        init_keystores(root, [party], passphrase=None, kem=KemSuite.HYBRID)
        self.directory = b""

    def rotate_broker(self) -> None:
        """The broker's staged rotation: its new keys in a signed directory the broker takes
        (so it signs with the new key) and the hub has not imported yet."""
        worker = FileKeyStore(self.root / "worker")
        old = worker.signing_key("worker").key_id
        worker.rotate("worker")
        governance = FileKeyStore(self.root / "governance")
        entries = export_entries(worker, "worker")
        self.directory = sign_directory(governance, [("worker.json", entries)])
        import_directory(worker, self.directory, where=self.root / "directory.json")
        assert FileKeyStore(self.root / "worker").signing_key("worker").key_id != old

    def import_directory(self) -> None:
        """``accord keys import`` on the hub: another process, another handle on its files."""
        hub = FileKeyStore(self.root / self.party)
        import_directory(hub, self.directory, where=self.root / "directory.json")

    async def deliver(self) -> str:
        delivery = _delivery(str(uuid.uuid4()), self.party)
        sealed = seal_delivery(FileKeyStore(self.root / "worker"), delivery)
        await produce(self.bootstrap, deliver(self.party), (sealed.value, sealed.headers))
        return delivery.event_id

    def subscriber(self, group: str, seen: list[Unopenable]) -> Subscriber:
        return Subscriber(
            self.party, FileKeyStore(self.root / self.party), clients(self.bootstrap), group,
            replay_memory=self.root / "replay.sqlite3", on_unopenable=seen.append,
        )  # fmt: skip


async def _group_at_end(bootstrap: str, party: str, group: str) -> int:
    """Start ``group`` at the end of the party's topic (its committed offset), so it reads only
    what the test produces, whatever the topic held before (another run on the same Kafka);
    the end offset."""
    topic = deliver(party)
    tp = TopicPartition(topic, 0)
    consumer: Any = clients(bootstrap).consumer(client_id=f"test-{party}", group=group)
    await consumer.start()
    try:
        consumer.assign([tp])
        end = int((await consumer.end_offsets([tp]))[tp])
        await consumer.commit({tp: end})
    finally:
        await consumer.stop()
    return end


def _mine(got: list[str], produced: list[str]) -> list[str]:
    return [event_id for event_id in got if event_id in produced]


async def _poll_for(sub: Subscriber, seconds: float) -> list[str]:
    """What the subscriber hands over within ``seconds`` (a poll may come back empty while
    the group forms)."""
    got: list[str] = []
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds
    while loop.time() < until:
        got += [r.message.event_id for r in await sub.poll(1.0)]
    return got


@pytest.mark.parametrize("imported", ["while-running", "while-stopped"])
async def test_a_delivery_signed_by_a_broker_key_not_yet_imported_is_parked_then_handed_over_once(
    imported: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Parked and committed past; the subscriber restarts (Kafka hands nothing over again);
    the directory is imported, while the restarted subscriber runs (``async for`` notices it)
    or before the next start; each delivery is handed over once, in all."""
    party = "hub-k" if imported == "while-running" else "hub-l"
    world = _World(tmp_path / "keys", party, kafka_bootstrap)
    group = f"{party}.parked-{uuid.uuid4().hex[:6]}"
    base = await _group_at_end(kafka_bootstrap, party, group)  # the first one's offset
    first = await world.deliver()  # signed by the key the hub knows
    world.rotate_broker()
    parked = [await world.deliver(), await world.deliver()]
    produced = [first, *parked]

    seen: list[Unopenable] = []
    async with world.subscriber(group, seen) as sub:
        got = _mine(await _poll_for(sub, 8), produced)
        assert sub.parked == 2
    assert got == [first]
    assert [(u.offset - base, u.reason, u.parked) for u in seen] == [
        (1, "unknown-signer", True),
        (2, "unknown-signer", True),
    ]

    # Restarted before the import: committed past, so Kafka hands nothing over again.
    seen.clear()
    async with world.subscriber(group, seen) as sub:
        assert _mine(await _poll_for(sub, 5), produced) == []
        assert sub.parked == 2
        if imported == "while-running":
            world.import_directory()
            records = aiter(sub)
            for _ in parked:
                got.append((await asyncio.wait_for(anext(records), 30)).message.event_id)
            await sub.commit()
            assert sub.parked == 0
    if imported == "while-stopped":
        world.import_directory()
        async with world.subscriber(group, seen) as sub:
            got += _mine(await _poll_for(sub, 8), produced)
            assert sub.parked == 0
    assert seen == []

    # Once: neither Kafka nor the parked records hand any of them over again.
    async with world.subscriber(group, seen) as sub:
        assert _mine(await _poll_for(sub, 5), produced) == []
        assert sub.parked == 0
    assert got == produced
    assert seen == []
