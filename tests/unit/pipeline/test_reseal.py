"""After a worker key rotation its consent entries are sealed again to the new key, and a
new signing key checkpoints every chain: revoking the old keys then loses nothing."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from broker.audit import AuditKind, AuditRecord, ChainWriter
from broker.config import KemSuite
from broker.kafka import TopicPartition
from broker.keys import FileKeyStore
from broker.pipeline._commits import Commits
from broker.pipeline._effects import OutRecord
from broker.pipeline._keywatch import checkpoint_again, follow_keys
from broker.pipeline._metrics import Metrics
from broker.pipeline._processor import Processor, build_processor
from broker.pipeline._report import GroupReport
from broker.pipeline._state import WorkerState
from broker.pipeline._tasks import Batch
from broker.policy import Policy
from broker.topics import AUDIT, CONSENT, STATE
from tests.unit.pipeline.conftest import AT, ENVELOPE
from tests.unit.pipeline.test_processor import Run
from tests.unit.pipeline.test_restore import LINKAGE, _read, genuine  # fixture

__all__ = ["genuine"]


def _rotated(keys: FileKeyStore, tmp_path: Path) -> tuple[FileKeyStore, list[str]]:
    shutil.copytree(keys.path, tmp_path / "keys")
    store = FileKeyStore(tmp_path / "keys")
    old = [k.key_id for k in store.keys("worker")]
    store.rotate("worker", kem=KemSuite.X25519, grace=timedelta(days=30))
    return store, old


def _processor(keys: FileKeyStore, policy: Policy) -> Processor:
    return build_processor(
        policy=policy,
        keys=keys,
        linkage_key=LINKAGE,
        state=WorkerState(),
        chain=ChainWriter("worker:test", clock=lambda: AT),
        clock=lambda: AT,
        envelope=ENVELOPE,
        metrics=Metrics(CollectorRegistry()),
    )


def test_consent_entries_under_the_current_key_need_no_resealing(
    genuine: Run,
    pipeline_keys: FileKeyStore,
) -> None:
    assert _read(pipeline_keys, genuine.on(STATE)).resealable() == {}


def test_consents_resealed_after_a_rotation_survive_revoking_the_old_key(
    genuine: Run,
    pipeline_keys: FileKeyStore,
    project_policy: Policy,
    tmp_path: Path,
) -> None:
    keys, old = _rotated(pipeline_keys, tmp_path)
    before = _read(keys, genuine.on(STATE))
    filed = genuine.processor.services.state.consents.filed
    assert filed
    assert set(before.resealable()) == {f"k:{f.record_id}" for f in filed}
    resealed = _processor(keys, project_policy).reseal(before.resealable())
    assert {r.key for r in resealed} == {f"k:{f.record_id}".encode() for f in filed}

    # The tail reads them back: nothing left to reseal.
    for r in resealed:
        before.apply(r.key, r.value, r.headers)
    assert before.resealable() == {}

    for key_id in old:
        keys.revoke(key_id)
    # Not compacted: compaction never touches the active segment, so each entry sealed to
    # the revoked key is still read, before its re-seal.
    after = _read(keys, [*genuine.on(STATE), *resealed])
    assert after.report.refused == {}  # no false alarm: every consent was restored
    assert after.report.superseded == {"k": len(filed)}
    assert after.view.consents.filed == filed
    # Compacted, the same.
    kept = {r.key: r for r in [*genuine.on(STATE), *resealed]}
    compacted = _read(keys, list(kept.values()))
    assert (compacted.report.refused, compacted.report.superseded) == ({}, {})
    assert compacted.view.consents.filed == filed


def test_state_resealed_is_logged_only_once_the_re_seal_s_transaction_commits(
    genuine: Run,
    pipeline_keys: FileKeyStore,
    project_policy: Policy,
    tmp_path: Path,
) -> None:
    """Operators wait for it before revoking the old key: queued is not yet durable."""
    keys, _ = _rotated(pipeline_keys, tmp_path)
    entries = _read(keys, genuine.on(STATE)).resealable()
    processor = _processor(keys, project_policy)
    with capture_logs() as logs:
        outs = processor.reseal(entries)
        assert [e for e in logs if e["event"] == "state_resealed"] == []
        task = SimpleNamespace(processor=processor, tp=TopicPartition(CONSENT, 0))
        commits = Commits({}, GroupReport())
        commits._committed(task, Batch(outs=outs, resealed=len(entries)))  # type: ignore[arg-type]
    assert [e["entries"] for e in logs if e["event"] == "state_resealed"] == [len(entries)]


def test_a_refused_entry_after_the_genuine_one_is_still_reported(
    genuine: Run, pipeline_keys: FileKeyStore
) -> None:
    """Only a later genuine entry supersedes a refused one: compaction keeps the latest."""
    consent = next(r for r in genuine.on(STATE) if r.key and r.key.startswith(b"k:"))
    junk = OutRecord(STATE, consent.key, b"junk")
    reader = _read(pipeline_keys, [*genuine.on(STATE), junk, junk])
    assert (reader.report.refused, reader.report.superseded) == ({"k": 2}, {})
    reader.apply(consent.key, consent.value, consent.headers)
    assert (reader.report.refused, reader.report.superseded) == ({}, {"k": 2})
    reader.apply(junk.key, junk.value, junk.headers)
    reader.apply(junk.key, None, [])  # the admin's tombstone clears it
    assert reader.report.refused == {}


def _checkpoints(out: list[OutRecord]) -> list[AuditRecord]:
    recs = [AuditRecord.model_validate_json(r.value) for r in out if r.topic == AUDIT]
    return [r for r in recs if r.kind is AuditKind.CHECKPOINT]


def test_a_checkpointed_head_is_checkpointed_again_only_when_asked(
    make_processor: Callable[..., Processor],
) -> None:
    """A quiet chain's latest checkpoint is otherwise under the old key until its next record."""
    processor = make_processor()
    first = processor.policy_loaded(processor.services.policy, source="test")
    assert len(_checkpoints(first)) == 1
    assert processor.checkpoint() == []
    assert len(_checkpoints(processor.checkpoint(again=True))) == 1


class _Keys:
    """A keystore whose worker signing and encryption keys change when told."""

    def __init__(self) -> None:
        self.key_id = "old"
        self.sealing = "old-kem"

    def current_signing_key(self, party: str) -> object:  # noqa: ARG002  # protocol signature
        return type("Ident", (), {"info": type("Info", (), {"key_id": self.key_id})})

    def current_encryption_key(self, party: str) -> object:  # noqa: ARG002  # protocol signature
        return type("Info", (), {"key_id": self.sealing})


class _Loop:
    def __init__(self) -> None:
        self.pending_policy: Callable[[Processor], list[OutRecord]] | None = None
        self.pending_reseal: bool | None = None


def test_a_new_signing_key_puts_a_checkpoint_on_every_chain_after_any_policy_load() -> None:
    keys, loop, stop = _Keys(), _Loop(), asyncio.Event()
    calls: list[str] = []

    class _Processor:
        def checkpoint(self, *, again: bool = False) -> list[OutRecord]:
            calls.append(f"checkpoint again={again}")
            return []

    async def scenario() -> None:
        watch = asyncio.create_task(follow_keys(keys, loop, stop, every=0.01))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        assert loop.pending_policy is None  # same key: nothing to do
        loop.pending_policy = lambda _p: calls.append("policy") or []  # type: ignore[func-returns-value]
        keys.key_id = "new"
        await asyncio.sleep(0.05)
        stop.set()
        await watch

    asyncio.run(scenario())
    assert loop.pending_policy is not None
    loop.pending_policy(_Processor())  # type: ignore[arg-type]
    assert calls == ["policy", "checkpoint again=True"]
    calls.clear()
    checkpoint_again(None)(_Processor())  # type: ignore[arg-type]
    assert calls == ["checkpoint again=True"]


def test_a_new_encryption_key_asks_for_a_re_seal_that_says_so_and_otherwise_a_quiet_check() -> None:
    """The quiet check catches entries another worker sealed to the old key meanwhile."""
    keys, loop, stop = _Keys(), _Loop(), asyncio.Event()

    async def scenario() -> list[bool | None]:
        seen: list[bool | None] = []
        watch = asyncio.create_task(follow_keys(keys, loop, stop, every=0.01))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        seen.append(loop.pending_reseal)  # same key: a quiet check
        loop.pending_reseal = None  # as the loop takes it
        keys.sealing = "new-kem"
        await asyncio.sleep(0.05)
        seen.append(loop.pending_reseal)  # a new key: announced, and not lowered to quiet
        stop.set()
        await watch
        return seen

    assert asyncio.run(scenario()) == [False, True]
    assert loop.pending_policy is None  # the signing key did not change
