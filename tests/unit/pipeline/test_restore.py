"""Restore takes only what the worker wrote: junk and forgeries are skipped and reported."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.config import KemSuite
from broker.envelope import Sealer
from broker.keys import FileKeyStore
from broker.pipeline._effects import OutRecord
from broker.pipeline._processor import Processor
from broker.pipeline._restore import EntryReader as _Reader
from broker.pipeline._state import STANDALONE, STATE_MAC_HEADER, state_mac, state_mac_key
from broker.topics import CONSENT, SCHEMA_CONSENT, STATE, ingress
from tests.unit.pipeline.conftest import ENVELOPE
from tests.unit.pipeline.test_processor import Run, _consent, incident, seal_as

LINKAGE = b"k" * 32  # what conftest's processors use
MAC_KEY = state_mac_key(LINKAGE)


@pytest.fixture
def genuine(make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore) -> Run:
    """A worker's run: a consent, two events, a checkpoint and the batch's close."""
    run = Run(make_processor())
    run.feed(CONSENT, *seal_as(pipeline_keys, "sandwell-coord",
                               _consent("given", "2026-10-01T09:00:00Z"), topic=CONSENT,
                               schema=SCHEMA_CONSENT))  # fmt: skip
    for _ in range(2):
        run.feed(ingress("wmp"), *seal_as(pipeline_keys, "wmp", incident(), topic=ingress("wmp")))
    run.out += run.processor.consumed({(ingress("wmp"), 0): run.offset + 1})
    return run


def _read(keys: FileKeyStore, records: list[OutRecord]) -> _Reader:
    reader = _Reader(keys, MAC_KEY)
    for r in records:
        reader.apply(r.key, r.value, r.headers)
    return reader


def _state(reader: _Reader) -> tuple[object, ...]:
    view = reader.view
    task = view.tasks[STANDALONE]
    return task.processed, view.consents.filed, task.shares, view.heads, view.offsets


def _signed(key: bytes, value: bytes, *headers: tuple[str, bytes]) -> OutRecord:
    """An entry with a valid MAC: as if written by someone holding the state MAC key."""
    return OutRecord(
        STATE, key, value, (*headers, (STATE_MAC_HEADER, state_mac(MAC_KEY, key, value)))
    )


def test_the_worker_s_own_entries_restore_exactly(
    genuine: Run, pipeline_keys: FileKeyStore
) -> None:
    reader = _read(pipeline_keys, genuine.on(STATE))
    s = genuine.processor.services.state
    assert _state(reader) == (s.fresh, s.consents.filed, s.shares, s.heads, s.offsets)
    assert reader.report.refused == {}
    assert reader.report.lost == []


def test_junk_and_forged_entries_are_skipped_and_reported(
    genuine: Run, pipeline_keys: FileKeyStore
) -> None:
    expected = _state(_read(pipeline_keys, genuine.on(STATE)))
    [head] = [r for r in genuine.on(STATE) if r.key and r.key.startswith(b"h:")]
    consent = next(r for r in genuine.on(STATE) if r.key and r.key.startswith(b"k:"))
    by_agency = Sealer("wmp", pipeline_keys, ENVELOPE).seal(
        b"[]", event_id="state-x", recipient="worker", schema="worker-state.v1", topic=STATE
    )
    forged = [
        OutRecord(STATE, head.key, b"{not json"),  # junk, no MAC: once crashed the restore
        OutRecord(
            STATE, f"o:{ingress('wmp')}:0".encode(), b"999999", ((STATE_MAC_HEADER, b"\x00" * 32),)
        ),  # skip inputs: wrong MAC
        OutRecord(STATE, head.key, head.value, ((STATE_MAC_HEADER, b"x"),)),  # fork the chain
        # A consent entry sealed by an agency: even with a valid MAC, not the worker's.
        _signed(consent.key or b"", by_agency.value, *by_agency.headers),
        _signed(b"h:worker:test", b'"a string, not a head"'),  # valid MAC, unreadable value
        OutRecord(STATE, b"r:evil", b"1", ((STATE_MAC_HEADER, b"\x00" * 32), ("x", b"y"))),
        OutRecord(STATE, b"p:accord.ingress.wmp:0:evil", b"1"),  # skip a record as a replay
    ]
    reader = _read(pipeline_keys, [*genuine.on(STATE), *forged])
    assert _state(reader) == expected
    assert reader.report.refused == {"h": 3, "o": 1, "k": 1, "r": 1, "p": 1}
    assert reader.report.lost == []  # every vital key still has its genuine entry


def test_a_vital_entry_with_no_genuine_value_left_is_lost_until_cleared(
    pipeline_keys: FileKeyStore,
) -> None:
    """As after compaction kept only a forged head: the worker must not start on it."""
    reader = _read(pipeline_keys, [OutRecord(STATE, b"h:worker:w1", b'{"seq": 9, "hash": "0"}')])
    assert reader.report.lost == ["h:worker:w1"]
    reader.apply(b"h:worker:w1", None, [])  # the admin's tombstone, after looking
    assert reader.report.lost == []
    lost = _read(pipeline_keys, [OutRecord(STATE, b"r:e1", b"1")]).report
    assert (lost.refused, lost.lost) == ({"r": 1}, [])  # a replay id is not vital


@pytest.mark.parametrize("change", ["rotated and expired", "retired", "revoked"])
def test_the_worker_s_state_outlives_its_keys_rotation_but_not_their_revocation(
    genuine: Run, pipeline_keys: FileKeyStore, tmp_path: Path, change: str
) -> None:
    """The changelog is kept for good, and its sealed entries (consent records) are sealed
    once: a routine rotation, its grace over, must not lose them; a revoked key opens
    nothing."""
    shutil.copytree(pipeline_keys.path, tmp_path / "keys")
    keys = FileKeyStore(tmp_path / "keys")
    old = [k.key_id for k in keys.keys("worker")]
    keys.rotate("worker", kem=KemSuite.X25519, grace=timedelta(0))
    for key_id in old:
        if change == "retired":
            keys.retire(key_id)
        elif change == "revoked":
            keys.revoke(key_id)
    assert not any(keys.public_key(k).is_live(datetime.now(UTC)) for k in old)  # type: ignore[union-attr]
    reader = _read(keys, genuine.on(STATE))
    filed = genuine.processor.services.state.consents.filed
    assert filed
    if change == "revoked":
        assert reader.report.refused["k"] == len(filed)
        assert not reader.view.consents.filed
    else:
        assert reader.report.refused == {}
        assert reader.view.consents.filed == filed
