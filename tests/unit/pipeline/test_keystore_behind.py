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
from broker.pipeline._effects import OutRecord
from broker.pipeline._restore import EntryReader
from broker.pipeline._tail import ChangelogTail
from broker.policy import Policy
from broker.topics import STATE
from tests.unit.pipeline.test_processor import Run
from tests.unit.pipeline.test_reseal_running import _reseal_and_read_back
from tests.unit.pipeline.test_restore import MAC_KEY, _read, genuine  # fixture

__all__ = ["genuine"]


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
    assert set(reader.report.unknown_keys) <= _new_worker_keys(old, newer)
    assert reader.report.unknown_keys
    with pytest.raises(ConfigError) as refused:
        reader.behind(running=False)
    line = str(refused.value)
    assert "\n" not in line
    assert "refusing to start" in line
    assert "keystore" in line
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
    reader.behind(running=False)  # does not raise
    assert reader.report.unknown_keys == {}
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
    with pytest.raises(ConfigError, match="stopping rather than quarantine"):
        await asyncio.wait_for(tail._run(changelog), 10)  # type: ignore[arg-type]
