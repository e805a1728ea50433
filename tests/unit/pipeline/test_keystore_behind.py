"""A worker whose keystore is an older copy than another worker's (a rotation it never got)
refuses to start, or stops, instead of quarantining live records sealed to the new key and
deciding without the consent filed under it (the worker operator's review, stop 37)."""

from __future__ import annotations

import asyncio
import shutil
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from broker.config import KemSuite
from broker.errors import ConfigError
from broker.kafka import TopicPartition
from broker.keys import FileKeyStore
from broker.pipeline import _newer_keys
from broker.pipeline._effects import OutRecord
from broker.pipeline._restore import EntryReader, _settle
from broker.pipeline._tail import ChangelogTail
from broker.policy import Policy
from broker.topics import STATE
from tests.unit.pipeline.test_processor import Run
from tests.unit.pipeline.test_reseal_running import _reseal_and_read_back
from tests.unit.pipeline.test_restore import MAC_KEY, _read, genuine  # fixture

__all__ = ["genuine"]


@pytest.fixture(autouse=True)
def _shorter_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the keystore's one-second look at its files, short of the real 3 s."""
    monkeypatch.setattr("broker.pipeline._newer_keys.SETTLE_S", 1.5)
    monkeypatch.setattr("broker.pipeline._restore.SETTLE_S", 1.5)


def _copies(keys: FileKeyStore, tmp_path: Path) -> tuple[FileKeyStore, FileKeyStore]:
    """Two copies of one worker keystore; the second rotated, as on the host that got it."""
    for name in ("old", "new"):
        shutil.copytree(keys.path, tmp_path / name)
    newer = FileKeyStore(tmp_path / "new")
    newer.rotate("worker", kem=KemSuite.X25519, grace=timedelta(days=45))
    return FileKeyStore(tmp_path / "old"), newer


def _now_ms() -> int:
    return int(time.time() * 1000) + 1000


def _resealed_by_newer(genuine: Run, newer: FileKeyStore, policy: Policy) -> list[OutRecord]:
    """The consent entries the worker with the rotated copy seals again under its new keys."""
    resealed = _reseal_and_read_back(_read(newer, genuine.on(STATE)), newer, policy)
    assert resealed
    return resealed


def _new_worker_keys(old: FileKeyStore, newer: FileKeyStore) -> set[str]:
    return {k.key_id for k in newer.keys("worker")} - {k.key_id for k in old.keys("worker")}


def test_a_consent_entry_under_a_worker_key_the_keystore_never_held_refuses_the_start(
    genuine: Run, pipeline_keys: FileKeyStore, project_policy: Policy, tmp_path: Path
) -> None:
    old, newer = _copies(pipeline_keys, tmp_path)
    reader = _read(old, genuine.on(STATE))
    for r in _resealed_by_newer(genuine, newer, project_policy):
        reader.apply(r.key, r.value, r.headers, _now_ms())
    pending = reader.newer.pending
    assert pending
    assert {k for u in pending.values() for k in u.key_ids} <= _new_worker_keys(old, newer)
    with pytest.raises(ConfigError) as refused:
        reader.behind(running=False, settle=False)
    line = str(refused.value)
    assert "\n" not in line
    assert "refusing to start" in line
    assert f"{len(pending)} consent entries" in line  # entries, not entries times keys
    assert any(key_id in line for key_id in _new_worker_keys(old, newer))


def test_entries_written_before_the_keystore_s_newest_key_are_refused_not_fatal(
    genuine: Run, pipeline_keys: FileKeyStore, project_policy: Policy, tmp_path: Path
) -> None:
    """A keystore lost and made anew (or rotated since, the way out when no copy holding the
    key is left): what the lost keys sealed is gone, and the worker starts without it."""
    old, newer = _copies(pipeline_keys, tmp_path)
    resealed = _resealed_by_newer(genuine, newer, project_policy)
    written = _now_ms()
    time.sleep(0.01)
    old.rotate("worker", kem=KemSuite.X25519, grace=timedelta(days=45))
    reader = _read(old, genuine.on(STATE))
    for r in resealed:
        reader.apply(r.key, r.value, r.headers, written - 2000)
    reader.behind(running=False, settle=False)  # does not raise
    assert reader.newer.pending == {}
    assert reader.report.refused["k"] == len(resealed)


def test_a_revoked_worker_key_is_known_and_its_entries_only_refused(
    genuine: Run, pipeline_keys: FileKeyStore, project_policy: Policy, tmp_path: Path
) -> None:
    old, newer = _copies(pipeline_keys, tmp_path)
    resealed = _resealed_by_newer(genuine, newer, project_policy)
    for key_id in _new_worker_keys(old, newer):
        newer.revoke(key_id)
    newer.rotate("worker", kem=KemSuite.X25519, grace=timedelta(days=45))
    reader = EntryReader(newer, MAC_KEY)
    for r in resealed:
        reader.apply(r.key, r.value, r.headers, _now_ms())
    reader.behind(running=True)  # does not raise
    assert reader.report.refused["k"] == len(resealed)


def test_a_tombstone_or_a_later_entry_for_the_same_key_clears_what_an_entry_claimed(
    genuine: Run, pipeline_keys: FileKeyStore, project_policy: Policy, tmp_path: Path
) -> None:
    """The claim rests on headers the state MAC does not cover: an admin who finds a forged
    one clears it with a tombstone, as any refused entry (docs/operations.md)."""
    old, newer = _copies(pipeline_keys, tmp_path)
    [resealed] = _resealed_by_newer(genuine, newer, project_policy)
    [filed] = [r for r in genuine.on(STATE) if r.key == resealed.key]
    reader = _read(old, genuine.on(STATE))
    reader.apply(resealed.key, resealed.value, resealed.headers, _now_ms())
    assert reader.newer.pending
    reader.apply(resealed.key, None, [])
    assert reader.newer.pending == {}
    reader.apply(resealed.key, resealed.value, resealed.headers, _now_ms())
    assert reader.newer.pending
    reader.apply(filed.key, filed.value, filed.headers, _now_ms())  # genuine, opens here
    assert reader.newer.pending == {}
    reader.behind(running=False, settle=False)  # does not raise


def test_a_time_far_ahead_of_the_reader_s_clock_is_believed_of_nothing(
    genuine: Run, pipeline_keys: FileKeyStore, project_policy: Policy, tmp_path: Path
) -> None:
    old, newer = _copies(pipeline_keys, tmp_path)
    reader = _read(old, genuine.on(STATE))
    a_year_on = _now_ms() + 365 * 24 * 3600 * 1000
    for r in _resealed_by_newer(genuine, newer, project_policy):
        reader.apply(r.key, r.value, r.headers, a_year_on)
    reader.behind(running=False, settle=False)  # does not raise
    assert reader.report.refused["k"] > 0


def test_a_running_worker_applies_an_entry_whose_key_appears_in_its_shared_keystore(
    genuine: Run, pipeline_keys: FileKeyStore, project_policy: Policy, tmp_path: Path
) -> None:
    """One keystore shared by two workers, rotated: the other seals to the new key a moment
    before this one reads the keystore again (at most once a second). Neither a stop nor a
    consent lost until the next start."""
    old, newer = _copies(pipeline_keys, tmp_path)
    reader = EntryReader(old, MAC_KEY)
    resealed = _resealed_by_newer(genuine, newer, project_policy)
    for r in resealed:  # to this reader, consent filed just now
        reader.apply(r.key, r.value, r.headers, _now_ms())
    assert reader.newer.pending
    reader.behind(running=True)  # within SETTLE_S: waits
    shutil.copytree(tmp_path / "new", tmp_path / "old", dirs_exist_ok=True)  # as rotated
    time.sleep(1.1)  # the keystore's next look at its files
    reader.behind(running=True)  # does not raise: the key is here now
    assert reader.newer.pending == {}
    assert len(reader.view.consents.filed) == len(resealed)


class _Changelog:
    """A consumer of ``accord.worker.state`` that hands out ``records`` once."""

    def __init__(self, records: list[OutRecord]) -> None:
        self.tp = TopicPartition(STATE, 0)
        self._batches = [
            {
                self.tp: [
                    SimpleNamespace(
                        key=r.key, value=r.value, headers=r.headers, timestamp=_now_ms()
                    )
                    for r in records
                ]
            }
        ]

    async def getmany(self, **_: Any) -> dict[TopicPartition, list[Any]]:
        if self._batches:
            return self._batches.pop(0)
        await asyncio.sleep(0.01)  # as a long poll that finds nothing
        return {}

    async def position(self, tp: TopicPartition) -> int:  # noqa: ARG002  # aiokafka's signature
        return 1


async def test_a_running_worker_s_tail_stops_it_on_an_entry_under_a_newer_worker_key(
    genuine: Run, pipeline_keys: FileKeyStore, project_policy: Policy, tmp_path: Path
) -> None:
    old, newer = _copies(pipeline_keys, tmp_path)
    changelog = _Changelog(_resealed_by_newer(genuine, newer, project_policy))
    tail = ChangelogTail(SimpleNamespace(), _read(old, genuine.on(STATE)), {changelog.tp: 0})  # type: ignore[arg-type]
    began = time.monotonic()
    with pytest.raises(ConfigError, match="stopping rather than quarantine"):
        await asyncio.wait_for(tail._run(changelog), 10)  # type: ignore[arg-type]
    assert time.monotonic() - began >= _newer_keys.SETTLE_S  # waited for the key first


def _tail(reader: EntryReader, changelog: _Changelog) -> ChangelogTail:
    tail = ChangelogTail(SimpleNamespace(), reader, {changelog.tp: 0})  # type: ignore[arg-type]
    tail._task = asyncio.create_task(tail._run(changelog))  # type: ignore[arg-type]
    return tail


async def test_the_view_is_not_current_while_an_entry_waits_and_the_worker_stops_if_no_key_comes(
    genuine: Run, pipeline_keys: FileKeyStore, project_policy: Policy, tmp_path: Path
) -> None:
    """Nothing is decided on a view that lacks a consent entry another worker committed (it
    may be a withdrawal): ``reach`` waits while it waits for its key, then ends the worker."""
    old, newer = _copies(pipeline_keys, tmp_path)
    changelog = _Changelog(_resealed_by_newer(genuine, newer, project_policy))
    tail = _tail(EntryReader(old, MAC_KEY), changelog)
    with pytest.raises(ConfigError, match="stopping"):
        await asyncio.wait_for(tail.reach({changelog.tp: 1}), _newer_keys.SETTLE_S + 5)
    await tail.stop()


async def test_the_view_is_current_with_the_entry_once_its_key_appears(
    genuine: Run, pipeline_keys: FileKeyStore, project_policy: Policy, tmp_path: Path
) -> None:
    old, newer = _copies(pipeline_keys, tmp_path)
    resealed = _resealed_by_newer(genuine, newer, project_policy)
    changelog = _Changelog(resealed)
    reader = EntryReader(old, MAC_KEY)
    tail = _tail(reader, changelog)
    await asyncio.sleep(0.3)
    assert reader.newer.pending
    assert tail.positions == {changelog.tp: 0}  # read, but not current
    shutil.copytree(tmp_path / "new", tmp_path / "old", dirs_exist_ok=True)  # as rotated
    await asyncio.wait_for(tail.reach({changelog.tp: 1}), _newer_keys.SETTLE_S + 5)
    assert len(reader.view.consents.filed) == len(resealed)
    await tail.stop()


async def test_the_restore_applies_an_entry_whose_key_appears_before_it_gives_up(
    genuine: Run, pipeline_keys: FileKeyStore, project_policy: Policy, tmp_path: Path
) -> None:
    """A shared keystore rotated during a restart: the entry was read a moment before the
    keystore looked at its files again."""
    old, newer = _copies(pipeline_keys, tmp_path)
    reader = EntryReader(old, MAC_KEY)
    resealed = _resealed_by_newer(genuine, newer, project_policy)
    for r in resealed:
        reader.apply(r.key, r.value, r.headers, _now_ms())
    assert reader.newer.pending
    shutil.copytree(tmp_path / "new", tmp_path / "old", dirs_exist_ok=True)
    await _settle(reader)  # does not raise
    assert len(reader.view.consents.filed) == len(resealed)
