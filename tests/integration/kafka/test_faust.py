"""faust-streaming consumes and produces against the real Apache Kafka."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.kafka_helpers import create_topics, unique_topic

HERE = Path(__file__).parent


async def test_a_faust_agent_copies_records_from_one_topic_to_another(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    src, dst = unique_topic("fsrc"), unique_topic("fdst")
    await create_topics(kafka_bootstrap, [src, dst])
    env = {
        **os.environ,
        "ECHO_APP_ID": f"echo-{uuid.uuid4().hex[:8]}",
        "ECHO_BOOTSTRAP": kafka_bootstrap,
        "ECHO_SRC": src,
        "ECHO_DST": dst,
        "ECHO_DATADIR": str(tmp_path),
        "PYTHONPATH": str(HERE),
    }
    log = (tmp_path / "faust.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, str(HERE / "faust_echo.py"), "worker", "-l", "warn", "--without-web"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for i in range(50):
                await producer.send(src, f"v{i}".encode(), key=f"k{i}".encode())
            await producer.flush()
        finally:
            await producer.stop()

        consumer = AIOKafkaConsumer(
            dst, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        got: dict[bytes, bytes] = {}
        try:
            for _ in range(120):  # up to ~60 s for the worker to join its group and catch up
                batch = await consumer.getmany(timeout_ms=500)
                for msgs in batch.values():
                    for m in msgs:
                        assert m.key is not None
                        assert m.value is not None
                        got[m.key] = m.value
                if len(got) >= 50 or worker.poll() is not None:
                    break
        finally:
            await consumer.stop()
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        log.close()
    assert got == {f"k{i}".encode(): f"v{i}".encode() for i in range(50)}, (
        tmp_path / "faust.log"
    ).read_text(errors="replace")[-2000:]
