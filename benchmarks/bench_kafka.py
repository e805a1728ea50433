"""The baseline: raw aiokafka consume → produce vs the same passthrough as a faust agent.

100k records of ~700 bytes are pre-loaded into a 3-partition topic; each variant copies them
to a topic of its own, on the same broker, in the same run:

- ``aiokafka``: one consumer, one idempotent producer (acks=all), ``getmany`` batches, both
  built by ``broker.kafka.KafkaClients`` as every Accord client is;
- ``faust_event``: a faust-streaming agent, ``async for`` + ``await topic.send()`` per record;
- ``faust_take``: the same agent with ``stream.take(500, within=0.05)`` batches;
- ``aiokafka_plaintext``: the aiokafka passthrough again, on a PLAINTEXT node of its own.

All but the last run on the run's broker, secured as the embedded default is (TLS, a SCRAM
login, ACLs). Rates are records/s from the first record out to the last one landing; the
ratios are faust/aiokafka, and secured/PLAINTEXT aiokafka (what TLS and SCRAM cost).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka.admin import NewTopic

from broker.config import KafkaSecurity, KafkaSettings
from broker.devkafka import EmbeddedKafka, free_port
from broker.kafka import KafkaClients, TopicPartition

HERE = Path(__file__).resolve().parent
N = 100_000
VALUE = os.urandom(350).hex().encode()  # 700 bytes


async def _topics(kafka: KafkaClients, *names: str) -> None:
    admin = kafka.admin()
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, 3, 1) for n in names])
    finally:
        await admin.close()


async def _load(kafka: KafkaClients, topic: str, n: int) -> None:
    producer = kafka.producer("bench-load", linger_ms=10, max_batch_size=512 * 1024)
    await producer.start()
    try:
        for i in range(n):
            await producer.send(topic, VALUE, key=str(i).encode())
        await producer.flush()
    finally:
        await producer.stop()


async def _landed(kafka: KafkaClients, topic: str) -> int:
    consumer = kafka.consumer(client_id="bench-landed")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(3)]
        end = await consumer.end_offsets(tps)
        return sum(end.values())
    finally:
        await consumer.stop()


async def _aiokafka(kafka: KafkaClients, src: str, dst: str, n: int) -> float:
    consumer = kafka.consumer(src, client_id="bench-raw", max_poll_records=5000,
                              fetch_max_wait_ms=500)  # fmt: skip
    producer = kafka.producer("bench-raw", max_batch_size=512 * 1024)
    await consumer.start()
    await producer.start()
    seen = 0
    start = None
    try:
        while seen < n:
            batch = await consumer.getmany(timeout_ms=1000)
            if start is None and batch:
                start = time.perf_counter()
            for msgs in batch.values():
                for m in msgs:
                    await producer.send(dst, m.value, key=m.key)
                seen += len(msgs)
        await producer.flush()
    finally:
        await consumer.stop()
        await producer.stop()
    return n / (time.perf_counter() - (start or 0.0))


async def _faust(admin: KafkaSettings, src: str, dst: str, n: int, mode: str, tmp: Path) -> float:
    bootstrap = admin.bootstrap
    client_file = admin.credentials_dir / "admin.librdkafka.conf" if admin.credentials_dir else None
    env = {
        **os.environ,
        "PASS_APP_ID": f"bench-{uuid.uuid4().hex[:6]}",
        "PASS_BOOTSTRAP": bootstrap,
        "PASS_SRC": src,
        "PASS_DST": dst,
        "PASS_MODE": mode,
        "PASS_DATADIR": str(tmp),
        "PASS_CLIENT_FILE": str(client_file or ""),
    }
    log = (tmp / f"faust-{mode}.log").open("wb")
    proc = subprocess.Popen(  # noqa: S603  # our own app, fixed argv
        [sys.executable, str(HERE / "faust_passthrough.py"), "worker", "-l", "warn"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp,
    )  # fmt: skip
    try:
        start = None
        deadline = time.perf_counter() + 600
        while time.perf_counter() < deadline:
            landed = await _landed(KafkaClients(admin), dst)
            if landed and start is None:
                start = time.perf_counter()
            if landed >= n:
                return n / (time.perf_counter() - (start or 0.0))
            if proc.poll() is not None:
                raise RuntimeError(f"faust exited; see {log.name}")
            await asyncio.sleep(0.2)
        raise RuntimeError("faust did not finish within 600 s")
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()


async def _passthrough(kafka: KafkaClients, n: int) -> float:
    tag = uuid.uuid4().hex[:6]
    src, dst = f"bench.src.{tag}", f"bench.aiokafka.{tag}"
    await _topics(kafka, src, dst)
    await _load(kafka, src, n)
    return await _aiokafka(kafka, src, dst, n)


async def _measure(admin: KafkaSettings, n: int, tmp: Path) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    src = f"bench.src.{tag}"
    outs = {k: f"bench.{k}.{tag}" for k in ("aiokafka", "faust_event", "faust_take")}
    kafka = KafkaClients(admin)
    await _topics(kafka, src, *outs.values())
    await _load(kafka, src, n)
    raw = await _aiokafka(kafka, src, outs["aiokafka"], n)
    event = await _faust(admin, src, outs["faust_event"], n, "event", tmp)
    take = await _faust(admin, src, outs["faust_take"], n, "take", tmp)
    plaintext = await _on_plaintext(n, tmp)
    return {
        "records": n,
        "record_bytes": len(VALUE),
        "aiokafka_per_s": round(raw),
        "faust_event_per_s": round(event),
        "faust_take_per_s": round(take),
        "ratio_faust_event_to_aiokafka": round(event / raw, 3),
        "ratio_faust_take_to_aiokafka": round(take / raw, 3),
        "aiokafka_plaintext_per_s": round(plaintext),
        "ratio_tls_scram_to_plaintext": round(raw / plaintext, 3),
    }


async def _on_plaintext(n: int, tmp: Path) -> float:
    """The same aiokafka passthrough on a PLAINTEXT node of its own: what TLS and SCRAM cost."""
    cache = Path(os.environ.get("ACCORD_HOME") or Path.home() / ".cache" / "accord")
    node = EmbeddedKafka(tmp / "plaintext", home=cache, port=free_port(),
                         controller_port=free_port(), security=KafkaSecurity.PLAINTEXT)  # fmt: skip
    node.start()
    try:
        return await _passthrough(KafkaClients(node.client_settings()), n)
    finally:
        node.stop()


def run(ctx: Any, n: int = N) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(_measure(ctx.admin, n, Path(tmp)))
