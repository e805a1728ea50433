"""``accord audit quarantine`` on a real Kafka and worker: the on-call engineer lists what was
quarantined as the indexer (no key, no content), and the IG officer opens a copy with the
governance key, signed in, the opening audited (``quarantine_opened``) before it is shown. A
malformed record's bytes (which may hold anything: here a name and an NHS number) appear only
in the opened copy, never in the list, its stderr, any log line or the audit record.
"""

from __future__ import annotations

import asyncio
import gc
import io
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from broker.audit import AuditKind
from broker.config import load_settings
from broker.console import TotpBox, UserFile
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
OFFICER, PASSWORD, HOST = "ig-jo", "correct horse battery staple", "ig-desk"
# --open signs the officer in, password on standard input, and audits the opening first.
SIGNED_IN = ("--as", OFFICER, "--purpose", "redrive", "--password-stdin", "--host", HOST)


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
        stdin, sys.stdin = sys.stdin, io.StringIO(PASSWORD + "\n")
        try:
            main(["audit", *argv])
        except SystemExit as exc:
            code = int(exc.code or 0)
        finally:
            sys.stdin = stdin
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
    _enrol_officer()

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
    code, opened, err = await accord("quarantine", "--open", junk["copy"], *SIGNED_IN)
    assert code == 0, err
    assert "may hold personal data" in err
    assert JUNK.decode() in opened
    assert "key: junk-key" in opened
    assert "header x-trace: t-1" in opened
    assert f"{ingress('wmp')} partition {junk['partition']} offset {junk['offset']}" in opened

    # The id to name to the sender of a tampered record: shown, said to be unauthenticated.
    [bad] = [x for x in listed if x["reason"] == "tampered"]
    code, opened, err = await accord("quarantine", "--open", bad["copy"], *SIGNED_IN)
    assert code == 0, err
    assert f"envelope (unauthenticated): event id {tampered_id}, sender wmp" in opened

    code, _, err = await accord("quarantine", "--open", "999", *SIGNED_IN)
    assert (code, err.count("\n")) == (2, 1)
    assert "holds no copy 999" in err

    await _openings_audited(bootstrap, accord, [junk, bad])


def _enrol_officer() -> None:
    """The IG officer's console account, as 'accord console add-user' makes it."""
    settings = load_settings()
    console_keys = FileKeyStore(settings.keystore_path("console"), settings.keystore_passphrase())
    box = TotpBox.from_keystore(console_keys, "console", create=True)
    UserFile(settings.console_users_file, box=box).add(OFFICER, PASSWORD)


async def _openings_audited(bootstrap: str, accord: Accord, opened: list[Any]) -> None:
    """Each opening is on the audit log, the officer's, before it was shown: who, why, which
    copy and where it came from; never what it held. The chain verifies and is indexed."""
    openings = [r for r in await read_audit(bootstrap) if r.kind is AuditKind.QUARANTINE_OPENED]
    junk, bad = opened
    assert [(r.chain, r.data["copy"], r.data["reason"]) for r in openings] == [
        (f"console:{HOST}.cli", junk["copy"], "malformed"),
        (f"console:{HOST}.cli", bad["copy"], "tampered"),
    ]
    assert {(r.data["officer"], r.data["purpose"], r.party) for r in openings} == {
        (OFFICER, "redrive", "wmp")
    }
    assert [r.data["quarantined"] for r in openings] == [junk["audit"], bad["audit"]]
    assert [r.data["offset"] for r in openings] == [junk["offset"], bad["offset"]]
    for r in openings:
        assert NAME.encode() not in r.to_bytes()
        assert NHS.encode() not in r.to_bytes()
        assert JUNK_KEY not in r.to_bytes()
    code, _, err = await accord("index")
    assert code == 0, err
    code, out, err = await accord("verify")
    assert (code, err) == (0, ""), err
    assert out.startswith("audit log intact")
