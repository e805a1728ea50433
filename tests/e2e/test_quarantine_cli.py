"""``accord audit quarantine`` on a real Kafka and worker: the on-call engineer lists what was
quarantined as the indexer (no key, no content), and the IG officer opens a copy with the
governance key. A malformed record's bytes (which may hold anything: here a name and an NHS
number) appear only in the opened copy, never in the list, its stderr or any log line.
"""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from broker.audit import AuditKind
from broker.devkafka import EmbeddedKafka
from broker.envelope import read_header
from broker.kafka import KafkaClients
from broker.keys import FileKeyStore
from broker.pipeline import WorkerOptions
from broker.topics import ingress
from tests.e2e.test_hostile_input import POLICIES, Forge
from tests.e2e.worker_proc import project_broker, read_audit, worker_in_process
from tests.kafka_helpers import clients, envelope_key, kafka_env, tries_within

pytestmark = pytest.mark.slow

NAME, NHS = "Smithereen", "9434765919"
JUNK = f"{NAME} {NHS} DY4 7AA".encode()  # not an envelope: quarantined as malformed
JUNK_KEY = b"junk-key"


Record = tuple[bytes, bytes | None, list[tuple[str, bytes]]]  # value, key, headers


async def _produce(kafka: KafkaClients, records: list[Record]) -> None:
    producer = kafka.producer("test-quarantine-cli")
    await producer.start()
    try:
        for value, key, headers in records:
            await producer.send(ingress("wmp"), value, headers=headers, key=key)
        await producer.flush()
    finally:
        await producer.stop()


Accord = Callable[..., Awaitable[tuple[int, str, str]]]


@pytest.fixture
def accord(capsys: pytest.CaptureFixture[str]) -> Accord:
    """``accord audit ARGS`` in-process, in a thread (each command runs its own event loop):
    (exit code, stdout, stderr)."""

    def cli(*argv: str) -> tuple[int, str, str]:
        from broker.cli import main

        gc.collect()
        capsys.readouterr()
        code = 0
        try:
            main(["audit", *argv])
        except SystemExit as exc:
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return code, out.out, out.err

    async def run(*argv: str) -> tuple[int, str, str]:
        return await asyncio.to_thread(cli, *argv)

    return run


async def _quarantine_two(
    bootstrap: str, tmp_path: Path, keys: FileKeyStore
) -> tuple[list[Any], str]:
    """A malformed record and a tampered one, quarantined by a real worker; its log lines
    and the tampered record's event id."""
    forge = Forge(keys, keys)
    _, sealed, headers = forge.sealed(forge.event())
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 0x01])  # the AEAD tag no longer verifies
    await _produce(
        clients(bootstrap),
        [(JUNK, JUNK_KEY, [("x-trace", b"t-1")]), (tampered, envelope_key(sealed), headers)],
    )
    with capture_logs() as logs:
        async with worker_in_process(bootstrap, tmp_path, keys, WorkerOptions(POLICIES)) as (
            task,
            _,
        ):
            for _ in tries_within(120):
                audit = await read_audit(bootstrap)
                if len([r for r in audit if r.kind is AuditKind.QUARANTINED]) >= 2:
                    break
                assert not task.done(), f"the worker stopped: {task.exception()!r}"
                await asyncio.sleep(0.5)
    return logs, str(read_header(sealed).event_id)


async def test_quarantined_records_are_listed_without_content_and_one_opens_with_governance_key(
    isolated_kafka: EmbeddedKafka, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, accord: Accord
) -> None:
    bootstrap = isolated_kafka.bootstrap
    _, keys = project_broker(bootstrap, tmp_path)  # provisioning grants the indexer its Read
    logs, tampered_id = await _quarantine_two(bootstrap, tmp_path, keys)
    assert not [e for e in logs if NAME in repr(e) or NHS in repr(e)]
    for name, value in kafka_env(bootstrap).items():  # each command logs in as itself
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path / "cli-home"))
    monkeypatch.setenv("ACCORD_KEYSTORE__PATH", str(keys.path))
    monkeypatch.delenv("ACCORD_AUDIT_DB", raising=False)

    # No index yet: where each copy came from, its reason not known.
    code, out, err = await accord("quarantine")
    assert code == 0, err
    assert "no audit index here" in err
    assert out.count(f"{ingress('wmp')}[") == 2

    code, _, err = await accord("index")
    assert code == 0, err
    code, out, err = await accord("quarantine", "--format", "json")
    assert code == 0, err
    listed = json.loads(out)
    assert sorted(x["reason"] for x in listed) == ["malformed", "tampered"]
    assert all(x["audit"] and x["copy"] is not None for x in listed)
    assert {x["sender"] for x in listed} == {"wmp"}
    assert {x["topic"] for x in listed} == {ingress("wmp")}
    code, table, err = await accord("quarantine", "--reason", "malformed", "--sender", "wmp")
    assert code == 0, err
    assert "malformed" in table
    assert "tampered" not in table
    for shown in (out, err, table):
        assert NAME not in shown
        assert NHS not in shown

    [junk] = [x for x in listed if x["reason"] == "malformed"]
    code, opened, err = await accord("quarantine", "--open", junk["copy"])
    assert code == 0, err
    assert "may hold personal data" in err
    assert JUNK.decode() in opened
    assert "key: junk-key" in opened
    assert "header x-trace: t-1" in opened
    assert f"{ingress('wmp')} partition {junk['partition']} offset {junk['offset']}" in opened

    # The id to name to the sender of a tampered record: shown, said to be unauthenticated.
    [bad] = [x for x in listed if x["reason"] == "tampered"]
    code, opened, err = await accord("quarantine", "--open", bad["copy"])
    assert code == 0, err
    assert f"envelope (unauthenticated): event id {tampered_id}, sender wmp" in opened

    code, _, err = await accord("quarantine", "--open", "999")
    assert (code, err.count("\n")) == (2, 1)
    assert "holds no copy 999" in err
