"""faust-streaming consumes and produces against the real Apache Kafka."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from tests.kafka_helpers import clients, create_topics, credentials_dir, unique_topic

APP = Path(__file__).resolve().parents[3] / "benchmarks" / "faust_passthrough.py"


async def test_a_faust_agent_copies_records_from_one_topic_to_another(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    src, dst = unique_topic("fsrc"), unique_topic("fdst")
    await create_topics(kafka_bootstrap, [src, dst])
    logins = credentials_dir(kafka_bootstrap)
    env = {
        **os.environ,
        "PASS_APP_ID": f"echo-{uuid.uuid4().hex[:8]}",
        "PASS_BOOTSTRAP": kafka_bootstrap,
        "PASS_SRC": src,
        "PASS_DST": dst,
        "PASS_DATADIR": str(tmp_path),
        "PASS_PARTITIONS": "1",
        "PASS_CLIENT_FILE": str(logins / "admin.librdkafka.conf") if logins else "",
    }
    log = (tmp_path / "faust.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, str(APP), "worker", "-l", "warn", "--without-web"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        producer = clients(kafka_bootstrap).producer("test-faust")
        await producer.start()
        try:
            for i in range(50):
                await producer.send(src, f"v{i}".encode(), key=f"k{i}".encode())
            await producer.flush()
        finally:
            await producer.stop()

        consumer = clients(kafka_bootstrap).consumer(dst, client_id="test-faust")
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
