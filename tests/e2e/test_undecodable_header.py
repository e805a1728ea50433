"""A record whose header key is not UTF-8 is quarantined; the worker goes on.

Kafka's broker accepts any bytes as a header key, but aiokafka decodes every key as UTF-8
while it parses a fetched batch: one such record made ``getmany`` raise on every fetch of
its partition, so the worker stopped, and a restarted one met the same record again. Here a
foreign client (kcat, over librdkafka) writes such records between valid events, in the
same fetch as them; the worker must quarantine each one, decide and deliver every valid event
exactly once, and keep running.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from broker.audit import AuditKind
from broker.devkafka import EmbeddedKafka
from broker.envelope import InMemoryReplayGuard, Opener
from broker.kafka import KafkaClients
from broker.pipeline import WorkerOptions
from broker.topics import QUARANTINE, deliver, ingress
from tests.e2e.test_hostile_input import POLICIES, Forge, Raw
from tests.e2e.worker_proc import (
    project_broker,
    read_all,
    read_audit,
    verify_chains,
    worker_in_process,
)
from tests.kafka_helpers import clients, credentials_dir, envelope_key, tries_within

pytestmark = pytest.mark.slow

BAD_KEY = b"\xff\xfe-not-utf8"


def _recent_librdkafka(tmp_path: Path) -> dict[str, str]:
    """kcat on the confluent-kafka wheel's librdkafka: Debian's cannot log in to Kafka 4
    (see tests/integration/security/test_kafka_access.py)."""
    import confluent_kafka

    libs = Path(confluent_kafka.__file__).parent.parent / "confluent_kafka.libs"
    [shipped] = libs.glob("librdkafka-*.so.1")
    (tmp_path / "librdkafka.so.1").symlink_to(shipped)
    return {"LD_LIBRARY_PATH": str(tmp_path), "PATH": "/usr/bin:/bin"}


def _kcat_undecodable(bootstrap: str, tmp_path: Path, values: list[bytes]) -> None:
    """As wmp, records whose headers include a key that is not UTF-8 (one producer batch)."""
    kcat = shutil.which("kcat")
    assert kcat is not None, "make test installs Debian's kcat"
    conf = credentials_dir(bootstrap)
    assert conf is not None
    produced = subprocess.run(  # fixed arguments; argv carries the key's raw bytes
        [kcat.encode(), b"-F", str(conf / "wmp.librdkafka.conf").encode(), b"-P",
         b"-t", ingress("wmp").encode(), b"-H", b"x-fine=1", b"-H", BAD_KEY + b"=v"],
        input=b"\n".join(values), capture_output=True, timeout=60, check=False,
        env=_recent_librdkafka(tmp_path),
        cwd=conf,  # the client file names its CA beside it, relatively (kafka-ca.pem)
    )  # fmt: skip
    assert produced.returncode == 0, produced.stderr


async def _produce(kafka: KafkaClients, records: list[Raw]) -> None:
    producer = kafka.producer("test-undecodable")
    await producer.start()
    try:
        for topic, value, headers in records:
            await producer.send(topic, value, headers=headers, key=envelope_key(value))
        await producer.flush()
    finally:
        await producer.stop()


async def test_a_header_key_that_is_not_utf8_is_quarantined_and_the_worker_goes_on(
    isolated_kafka: EmbeddedKafka, tmp_path: Path
) -> None:
    bootstrap = isolated_kafka.bootstrap
    _, keys = project_broker(bootstrap, tmp_path)
    kafka = clients(bootstrap)
    forge = Forge(keys, keys)
    # Before the worker starts, so that its first fetch holds valid records on both sides
    # of the undecodable ones.
    await _produce(kafka, [forge.good() for _ in range(5)])
    _kcat_undecodable(bootstrap, tmp_path, [b"first", b"second", b"third"])
    await _produce(kafka, [forge.good() for _ in range(5)])
    async with worker_in_process(bootstrap, tmp_path, keys, WorkerOptions(POLICIES)) as (task, _):
        await _produce(kafka, [forge.good() for _ in range(5)])  # and after, while it runs
        for _ in tries_within(240):
            audit = await read_audit(bootstrap)
            quarantined = [r for r in audit if r.kind is AuditKind.QUARANTINED]
            received = {r.event_id for r in audit if r.kind is AuditKind.RECEIVED}
            if len(quarantined) >= 3 and len(received) >= len(forge.valid):
                break
            assert not task.done(), f"the worker stopped: {task.exception()!r}"
            await asyncio.sleep(0.5)
        assert not task.done(), "the worker stopped"

    assert received == set(forge.valid)
    assert [r.data["reason"] for r in quarantined] == ["undecodable-header"] * 3
    assert len({(r.data["partition"], r.data["offset"]) for r in quarantined}) == 3
    held = [
        json.loads(Opener("governance", keys, replay_guard=InMemoryReplayGuard())
                   .open_kafka(m.value, m.headers, topic=QUARANTINE).payload)
        for m in await read_all(bootstrap, QUARANTINE)
    ]  # fmt: skip
    assert sorted(base64.b64decode(h["value"]) for h in held) == [b"first", b"second", b"third"]
    assert all(["x-fine", "MQ=="] in h["headers"] for h in held)
    assert all(any(k == "\\xff\\xfe-not-utf8" for k, _ in h["headers"]) for h in held)

    decided = {r.event_id for r in audit if r.kind is AuditKind.DECIDED}
    assert decided == set(forge.valid)
    coord = Counter(m.key.decode() for m in await read_all(bootstrap, deliver("sandwell-coord")))
    assert coord == Counter(forge.valid)  # each exactly once
    verify_chains(audit, keys)
