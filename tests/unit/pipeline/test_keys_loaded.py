"""The worker records its keystore in its audit log (``keys_loaded``): the directory it holds
when a chain opens, and what changed each time the keystore changes while it runs.

A police force's security officer, after a keystore theft, found nothing in the log saying
which directory each worker took, which keys it added or revoked, or when.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from broker.audit import AuditKind, AuditRecord, ChainWriter, read_record
from broker.config import KafkaSettings, KemSuite, Settings
from broker.kafka import KafkaClients
from broker.keys import (
    FileKeyStore,
    export_entries,
    import_directory,
    imported_directory,
    sign_directory,
)
from broker.pipeline import Worker, WorkerOptions
from broker.pipeline._effects import OutRecord
from broker.pipeline._keyset import key_set
from broker.pipeline._keywatch import follow_keys
from broker.pipeline._metrics import Metrics
from broker.pipeline._processor import Processor, build_processor
from broker.pipeline._state import TaskId, WorkerState
from broker.policy import Policy
from broker.topics import AUDIT, CONSENT
from tests.unit.pipeline.conftest import AT, ENVELOPE
from tests.unit.pipeline.test_restore import LINKAGE

REPO = Path(__file__).resolve().parents[3]


def _copy(keys: FileKeyStore, tmp_path: Path) -> FileKeyStore:
    shutil.copytree(keys.path, tmp_path / "keys")
    return FileKeyStore(tmp_path / "keys")


def _processor(keys: FileKeyStore, policy: Policy) -> Processor:
    state = WorkerState()
    return build_processor(
        policy=policy, keys=keys, linkage_key=LINKAGE, state=state,
        chain=ChainWriter(state.task.chain, clock=lambda: AT), clock=lambda: AT,
        envelope=ENVELOPE, metrics=Metrics(CollectorRegistry()),
    )  # fmt: skip


def _audit(outs: list[OutRecord]) -> list[AuditRecord]:
    return [read_record(r.value) for r in outs if r.topic == AUDIT]


async def _watch(keys: Any, change: Any) -> tuple[SimpleNamespace, list[dict[str, Any]]]:
    """Run the key watch, make ``change`` to the keystore, and give what it asked of the loop."""
    loop = SimpleNamespace(pending_policy=None, pending_reseal=None)
    stop = asyncio.Event()
    with capture_logs() as logs:
        watch = asyncio.create_task(follow_keys(keys, loop, stop, every=0.01))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        assert loop.pending_policy is None  # nothing changed: nothing recorded
        change()
        await asyncio.sleep(0.1)
        stop.set()
        await watch
    return loop, logs


async def test_a_rotation_while_running_puts_keys_loaded_with_the_new_ids_then_a_checkpoint_on_each_chain(  # noqa: E501
    pipeline_keys: FileKeyStore, project_policy: Policy, tmp_path: Path
) -> None:
    keys = _copy(pipeline_keys, tmp_path)
    old = {k.key_id for k in keys.keys("worker")}
    loop, logs = await _watch(
        keys, lambda: keys.rotate("worker", kem=KemSuite.X25519, grace=timedelta(days=30))
    )
    new = sorted({k.key_id for k in keys.keys("worker")} - old)
    assert len(new) == 2  # signing and encryption
    assert loop.pending_policy is not None
    records = _audit(loop.pending_policy(_processor(keys, project_policy)))
    assert [r.kind for r in records] == [AuditKind.KEYS_LOADED, AuditKind.CHECKPOINT]
    data = records[0].data
    assert data["occasion"] == "changed"
    assert (data["serial"], data["serial_before"]) == (0, 0)
    assert data["added"] == {"worker": new}
    assert data["revoked"] == data["retired"] == data["expired"] == data["dropped"] == {}
    assert data["keys"]["live"] == len(keys.keys())
    changed = [e for e in logs if e["event"] == "key_directory_changed"]
    assert [(e["added"], e["revoked"]) for e in changed] == [(2, 0)]
    assert not any(k in json.dumps(changed) for k in new)  # the log counts, never names


async def test_a_revocation_alone_is_recorded_though_the_worker_s_own_keys_stay(
    pipeline_keys: FileKeyStore, project_policy: Policy, tmp_path: Path
) -> None:
    """The stolen-keystore case: another party's keys revoked; the worker signs on as before,
    so nothing else would have put a record on its chains."""
    keys = _copy(pipeline_keys, tmp_path)
    stolen = [k.key_id for k in keys.keys("wmp")]
    loop, logs = await _watch(keys, lambda: [keys.revoke(k) for k in stolen])
    records = _audit(loop.pending_policy(_processor(keys, project_policy)))
    assert [r.kind for r in records] == [AuditKind.KEYS_LOADED, AuditKind.CHECKPOINT]
    data = records[0].data
    assert data["revoked"] == {"wmp": sorted(stolen)}
    assert data["added"] == {}
    assert data["keys"]["revoked"] == len(stolen)
    assert "signing_key_changed" not in [e["event"] for e in logs]
    # No key material: a key id is a fingerprint; the public keys appear nowhere.
    text = records[0].to_bytes().decode()
    for k in keys.keys(None):
        assert base64.b64encode(k.public).decode() not in text
        assert k.public.hex() not in text


def test_an_imported_directory_s_serial_and_signer_are_what_the_record_names(
    pipeline_keys: FileKeyStore, tmp_path: Path
) -> None:
    governance = _copy(pipeline_keys, tmp_path)  # holds every private key, governance's too
    worker_dir = tmp_path / "worker"
    shutil.copytree(governance.path, worker_dir)
    worker = FileKeyStore(worker_dir)
    assert imported_directory(worker) == (0, None)
    entries = [("worker", export_entries(governance, "worker"))]
    signed = sign_directory(governance, entries, allow_second_key=True)
    signer = next(k.key_id for k in governance.keys("governance") if k.purpose == "sign")
    import_directory(worker, signed, where=Path("test"), trust=signer)
    assert imported_directory(worker) == (1, signer)
    now = key_set(worker)
    assert now is not None
    opened = now.opened()
    assert (opened["occasion"], opened["serial"], opened["signer_key_id"]) == ("opened", 1, signer)
    assert sum(opened["keys"].values()) == len(worker.keys())
    assert "added" not in opened  # at an opening: counts only


def test_a_directory_imported_by_another_process_is_recorded_with_its_serial_at_once(
    pipeline_keys: FileKeyStore, tmp_path: Path
) -> None:
    """The worker and ``accord keys import`` each hold their own store on one keystore; the
    worker's caches its key list for up to a second. Looked at just after an import, the
    change must carry the revocation with the serial that brought it, not an empty change
    under the new serial and the revocation a tick later under ``serial 2 -> 2``."""
    governance = _copy(pipeline_keys, tmp_path)
    worker_dir = tmp_path / "worker"
    shutil.copytree(governance.path, worker_dir)
    signer = next(k.key_id for k in governance.keys("governance") if k.purpose == "sign")
    entries = [("worker", export_entries(governance, "worker"))]
    first = sign_directory(governance, entries, allow_second_key=True)
    importer = FileKeyStore(worker_dir)  # the CLI's
    import_directory(importer, first, where=Path("test"), trust=signer)
    worker = FileKeyStore(worker_dir)  # the running worker's
    before = key_set(worker)
    assert before is not None
    assert before.serial == 1
    stolen = sorted(k.key_id for k in governance.keys("wmp"))
    for key_id in stolen:
        governance.revoke(key_id)
    import_directory(importer, sign_directory(governance, []), where=Path("test"))
    after = key_set(worker)  # at once: well inside the worker store's second
    assert after is not None
    change = after.changed_since(before)
    assert (change["serial"], change["serial_before"]) == (2, 1)
    assert change["revoked"] == {"wmp": stolen}


def test_each_chain_the_worker_opens_starts_with_keys_loaded_then_policy_loaded(
    pipeline_keys: FileKeyStore, project_policy: Policy, tmp_path: Path
) -> None:
    worker = Worker(
        Settings(home=tmp_path, policies=REPO / "policies"),
        WorkerOptions(policies=REPO / "policies"),
        kafka=KafkaClients(KafkaSettings(username="worker", password="pw")),
        registry=CollectorRegistry(),
    )
    worker.policy = project_policy
    open_task = worker._task_opener(pipeline_keys, LINKAGE)
    _, first = open_task(TaskId(CONSENT, 0), WorkerState())
    records = _audit(first)
    assert [r.kind for r in records] == [
        AuditKind.KEYS_LOADED,
        AuditKind.POLICY_LOADED,
        AuditKind.CHECKPOINT,
    ]
    data = records[0].data
    assert (data["occasion"], data["serial"]) == ("opened", 0)
    assert data["keys"]["live"] == len(pipeline_keys.keys())
    assert records[0].party is None
    assert records[0].subject_keys == ()


def test_a_keystore_that_cannot_list_its_keys_records_nothing() -> None:
    assert key_set(SimpleNamespace(current_signing_key=None)) is None
