"""The restore's ``state_entries_refused`` line gives each cause of refusal its own hint: a
forged entry (no state MAC this worker made) is never sent to restore the keystore, and a
genuine consent entry under a revoked worker key is."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from broker.envelope import DEK_BUNDLE_HEADER, KeyPurpose
from broker.kafka import TopicPartition
from broker.keys import FileKeyStore
from broker.pipeline._effects import OutRecord
from broker.pipeline._processor import Processor
from broker.pipeline._restore import EntryReader, _refused_hints, restore_state
from broker.pipeline._state import STATE_MAC_HEADER, state_mac, state_mac_key
from broker.topics import CONSENT, SCHEMA_CONSENT, STATE, ingress
from tests.unit.pipeline.test_processor import Run, _consent, incident, seal_as

MAC_KEY = state_mac_key(b"k" * 32)  # conftest's processors' linkage key


@dataclass
class _Msg:
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]]
    timestamp: int | None = None


class _Changelog:
    """A group-less consumer of one partition holding ``records``, as the restore reads it."""

    def __init__(self, records: list[OutRecord]) -> None:
        self.tp = TopicPartition(STATE, 0)
        self.msgs = [_Msg(r.key, r.value, r.headers) for r in records]
        self.pos = 0

    def consumer(self, *topics: str, **options: Any) -> _Changelog:  # noqa: ARG002
        return self

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def topics(self) -> set[str]:
        return {STATE}

    def assignment(self) -> set[TopicPartition]:
        return {self.tp}

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:  # noqa: ARG002
        self.pos = 0

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(partitions, len(self.msgs))

    async def position(self, tp: TopicPartition) -> int:  # noqa: ARG002
        return self.pos

    async def getmany(self, *tps: TopicPartition, **options: Any) -> dict[Any, list[_Msg]]:  # noqa: ARG002
        batch, self.pos = self.msgs[self.pos :], len(self.msgs)
        return {self.tp: batch}


@pytest.fixture
def written(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> list[OutRecord]:
    """What a worker wrote to its changelog: a consent, an event, and the batch's close."""
    run = Run(make_processor())
    run.feed(CONSENT, *seal_as(pipeline_keys, "sandwell-coord",
                               _consent("given", "2026-10-01T09:00:00Z"), topic=CONSENT,
                               schema=SCHEMA_CONSENT))  # fmt: skip
    run.feed(ingress("wmp"), *seal_as(pipeline_keys, "wmp", incident(), topic=ingress("wmp")))
    run.out += run.processor.consumed({(ingress("wmp"), 0): run.offset + 1})
    return run.on(STATE)


async def _refused_line(keys: FileKeyStore, records: list[OutRecord]) -> dict[str, Any]:
    with capture_logs() as logs:
        await restore_state(_Changelog(records), keys, MAC_KEY)  # type: ignore[arg-type]
    [line] = [e for e in logs if e["event"] == "state_entries_refused"]
    return line


def _revoked_worker_keys(keys: FileKeyStore, tmp_path: Path) -> FileKeyStore:
    shutil.copytree(keys.path, tmp_path / "keys")
    copy = FileKeyStore(tmp_path / "keys")
    for info in copy.keys("worker"):
        if info.purpose is KeyPurpose.ENCRYPT:
            copy.revoke(info.key_id)
    return copy


async def test_a_forged_consent_entry_gets_the_forged_hint_not_the_keystore_one(
    written: list[OutRecord], pipeline_keys: FileKeyStore
) -> None:
    consent = next(r for r in written if r.key and r.key.startswith(b"k:"))
    offset = next(r for r in written if r.key and r.key.startswith(b"o:"))
    forged = [
        # Written by a principal with write access to the topic, not with the worker's MAC key.
        OutRecord(STATE, consent.key, consent.value, (*consent.headers[:-1],
                                                      (STATE_MAC_HEADER, b"\x00" * 32))),
        OutRecord(STATE, offset.key, b"999999", ((STATE_MAC_HEADER, b"\x00" * 32),)),
    ]  # fmt: skip
    assert consent.headers[-1][0] == STATE_MAC_HEADER

    line = await _refused_line(pipeline_keys, [*written, *forged])

    assert (line["kind_k"], line["kind_o"]) == (1, 1)
    assert line["refused_forged"] == 2
    assert "tombstone" in line["hint_forged"]
    assert not {"hint", "hint_keys", "refused_keys"} & line.keys()


async def test_a_genuine_consent_entry_under_a_revoked_worker_key_gets_the_keystore_hint(
    written: list[OutRecord], pipeline_keys: FileKeyStore, tmp_path: Path
) -> None:
    keys = _revoked_worker_keys(pipeline_keys, tmp_path)

    line = await _refused_line(keys, written)

    filed = sum(1 for r in written if r.key and r.key.startswith(b"k:"))
    assert line["kind_k"] == line["refused_keys"] == filed
    assert "restore the worker keystore from backup" in line["hint_keys"]
    assert not {"hint", "hint_forged", "refused_forged"} & line.keys()


async def test_both_causes_are_counted_apart_in_the_one_line(
    written: list[OutRecord], pipeline_keys: FileKeyStore, tmp_path: Path
) -> None:
    keys = _revoked_worker_keys(pipeline_keys, tmp_path)
    junk = OutRecord(STATE, b"k:Amy-Hollis", b'{"name": "Amy Hollis"}')  # no MAC at all

    line = await _refused_line(keys, [*written, junk])

    filed = sum(1 for r in written if r.key and r.key.startswith(b"k:"))
    assert (line["refused_keys"], line["refused_forged"]) == (filed, 1)
    assert line["kind_k"] == filed + 1
    assert {"hint_keys", "hint_forged"} <= line.keys()
    # Counts and hints only: never a key or a value of an entry.
    assert all(isinstance(v, int) for k, v in line.items() if k.startswith(("kind_", "refused_")))
    assert "Amy" not in str(line)


async def test_an_entry_with_the_worker_s_mac_it_cannot_take_is_neither_forged_nor_a_key_matter(
    pipeline_keys: FileKeyStore,
) -> None:
    """Only a holder of the linkage key makes the MAC, so "written by someone without it"
    would be false, and the keystore is not at fault either."""
    key, value = b"h:worker:test", b'"a string, not a head"'
    reader = EntryReader(pipeline_keys, MAC_KEY)
    reader.apply(key, value, [(STATE_MAC_HEADER, state_mac(MAC_KEY, key, value))])
    assert reader.report.refused_by_cause == {"unreadable": 1}
    assert _refused_hints(reader.report.refused_by_cause).keys() == {
        "refused_unreadable",
        "hint_unreadable",
    }


async def test_a_consent_entry_stripped_of_its_key_bundle_is_unreadable_not_a_keystore_matter(
    written: list[OutRecord], pipeline_keys: FileKeyStore
) -> None:
    """Review s43r4: the MAC covers the value only, so someone with write access can keep a
    genuine value and strip its DEK bundle header; the operator must investigate, not restore
    a keystore."""
    consent = next(r for r in written if r.key and r.key.startswith(b"k:"))
    stripped = tuple(h for h in consent.headers if h[0] != DEK_BUNDLE_HEADER)
    altered = OutRecord(consent.topic, consent.key, consent.value, stripped)
    line = await _refused_line(pipeline_keys, [*(r for r in written if r is not consent), altered])
    assert line.get("refused_unreadable") == 1
    assert "refused_keys" not in line
