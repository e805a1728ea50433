"""``accord audit quarantine``'s list and opened copy, over records made here (the real
topic and worker: tests/e2e/test_quarantine_cli.py)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from broker.audit import AuditKind, AuditRecord
from broker.cli._audit_quarantine_view import (
    Copy,
    chosen,
    join,
    opened_text,
    parse_copy_id,
    source_of,
    table,
    unindexed,
)
from broker.cli._audit_quarantine_view import as_json as lines_json
from broker.envelope import Sealer
from broker.keys import FileKeyStore
from broker.topics import SCHEMA_EVENT

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
EVENT = "0b7f4c5e-3a52-4d9c-9a3e-2f1c7d6b8e90"


def _audited(seq: int, reason: str, topic: str, offset: int, **extra: Any) -> AuditRecord:
    return AuditRecord(
        chain="worker-0",
        seq=seq,
        at=T0 + timedelta(minutes=seq),
        kind=AuditKind.QUARANTINED,
        event_id=extra.pop("event_id", None),
        party=extra.pop("party", None),
        data={"reason": reason, "stage": extra.pop("stage", "open"), "topic": topic,
              "partition": 0, "offset": offset, "digest": "ab" * 16, "size": 9, **extra},
        prev_hash="0" * 64,
        hash="1" * 64,
    )  # fmt: skip


def _copy(offset: int, topic: str, source_offset: int, minute: int) -> Copy:
    return Copy(0, offset, T0 + timedelta(minutes=minute), (topic, 0, source_offset))


WMP, CSC = "accord.ingress.wmp", "accord.ingress.sandwell-csc"


@pytest.fixture
def lines() -> list[Any]:
    audited = [
        _audited(3, "malformed", WMP, 40, stage="read", party="wmp"),
        _audited(5, "invalid-event", CSC, 7, party="sandwell-csc", event_id=EVENT),
        _audited(9, "tampered", WMP, 41, party="wmp", held=False),  # no copy sealed
    ]
    copies = [_copy(0, WMP, 40, 3), _copy(1, CSC, 7, 5), _copy(2, CSC, 8, 10)]  # 2: not indexed
    return join(copies, audited)


def test_each_copy_is_joined_with_the_audit_record_of_the_same_source_record(lines: Any) -> None:
    by_copy = {line.copy: line for line in lines}
    assert (by_copy["0"].reason, by_copy["0"].stage, by_copy["0"].audit) == (
        "malformed", "read", "worker-0#3",
    )  # fmt: skip
    assert (by_copy["1"].sender, by_copy["1"].event_id) == ("sandwell-csc", EVENT)
    assert (by_copy["1"].topic, by_copy["1"].partition, by_copy["1"].offset) == (CSC, 0, 7)


def test_a_copy_not_yet_indexed_shows_its_source_and_an_unknown_reason(lines: Any) -> None:
    [waiting] = [line for line in lines if line.copy == "2"]
    assert (waiting.reason, waiting.audit, waiting.offset) == ("?", None, 8)
    assert waiting.sender == "sandwell-csc"  # the ingress topic names it
    assert unindexed(lines) == 1


def test_a_quarantine_without_a_copy_is_listed_from_its_audit_record(lines: Any) -> None:
    [bare] = [line for line in lines if line.reason == "tampered"]
    assert (bare.copy, bare.audit, bare.offset) == (None, "worker-0#9", 41)


def test_lines_are_oldest_first(lines: Any) -> None:
    assert [line.time for line in lines] == sorted(line.time for line in lines)


def test_filters_keep_the_reason_the_sender_and_the_time_asked_for(lines: Any) -> None:
    assert [x.copy for x in chosen(lines, reason="malformed")] == ["0"]
    assert [x.audit for x in chosen(lines, sender="wmp")] == ["worker-0#3", "worker-0#9"]
    late = chosen(lines, since=T0 + timedelta(minutes=4))
    assert {x.reason for x in late} == {"invalid-event", "?", "tampered"}
    assert chosen(lines, reason="replay") == []


def test_a_record_quarantined_twice_has_a_line_per_quarantine() -> None:
    twice = join(
        [_copy(0, WMP, 40, 1), _copy(1, WMP, 40, 2)],
        [_audited(1, "malformed", WMP, 40), _audited(2, "malformed", WMP, 40)],
    )
    assert [(x.copy, x.audit) for x in twice] == [("0", "worker-0#1"), ("1", "worker-0#2")]


def test_the_table_and_json_name_where_each_came_from(lines: Any) -> None:
    text = table(lines)
    assert text.splitlines()[0].split()[:4] == ["COPY", "TIME", "REASON", "STAGE"]
    assert f"{WMP}[0]@40" in text
    assert "worker-0#3" in text
    [first, *_] = json.loads(lines_json(lines))
    assert first["reason"] == "malformed"
    assert (first["copy"], first["audit"], first["offset"]) == ("0", "worker-0#3", 40)
    assert table([]) == "no quarantined records"


@pytest.mark.parametrize(
    ("envelope_id", "source"),
    [
        ("q-accord.ingress.sandwell-csc-3-1207", ("accord.ingress.sandwell-csc", 3, 1207)),
        ("q-accord.consent-0-5", ("accord.consent", 0, 5)),
        ("q-accord.ingress.wmp-x-5", None),
        ("0b7f4c5e-3a52-4d9c-9a3e-2f1c7d6b8e90", None),
    ],
)
def test_a_copys_source_is_read_from_its_envelope_id(
    envelope_id: str, source: tuple[str, int, int] | None
) -> None:
    assert source_of(envelope_id) == source


def test_copy_ids_are_offsets_or_partition_and_offset() -> None:
    assert parse_copy_id("17") == (0, 17)
    assert parse_copy_id("1:17") == (1, 17)
    assert parse_copy_id("x") is None
    assert parse_copy_id("-1") is None


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_an_opened_copy_shows_key_headers_and_value_with_control_bytes_escaped() -> None:
    payload = {
        "reason": "malformed", "stage": "read", "topic": WMP, "partition": 0, "offset": 40,
        "digest": "ab" * 16, "size": 30, "truncated": False, "key": _b64(b"k1"),
        "headers": [["x-trace", _b64(b"t-1")], ["x-null", None]],
        "value": _b64(b"Jane \x1b[2J\xff tail\nline"),
    }  # fmt: skip
    text = opened_text("0", payload)
    assert "malformed at read" in text
    assert "key: k1" in text
    assert "header x-trace: t-1" in text
    assert "header x-null: (null)" in text
    assert "  Jane \\x1b[2J\\xff tail\n  line" in text  # no escape sequence reaches the terminal
    assert "\x1b" not in text
    assert "envelope: none" in text


def test_a_sender_cannot_print_a_line_that_looks_like_ours_or_an_escape_of_ours() -> None:
    """A key or header holding a line break printed a fake 'envelope (unauthenticated)' line
    naming another sender; a backslash in the record read as one of our escapes (r45e)."""
    fake = b"k\nenvelope (unauthenticated): event id x, sender sandwell-csc"
    payload = {
        "reason": "tampered", "stage": "open", "key": _b64(fake),
        "headers": [["h\nenvelope (unauthenticated): sender x", _b64(b"v\nkey: forged")]],
        "value": _b64(b"a literal \\x1b, and a line\nsender sandwell-csc"),
    }  # fmt: skip
    lines = opened_text("0", payload).splitlines()
    assert not any(line.startswith(("envelope (unauthenticated)", "key: forged", "sender"))
                   for line in lines), lines  # fmt: skip
    assert "  a literal \\\\x1b, and a line" in lines


@pytest.mark.parametrize("copy", ["\u00b2", "1:\u00b2", "\u0663"])
def test_a_copy_id_of_other_digits_is_one_line_not_a_traceback_nor_another_copy(
    copy: str,
) -> None:
    assert parse_copy_id(copy) is None


def test_an_opened_envelope_names_its_unauthenticated_event_id(tmp_path: Path) -> None:
    """The id to name to the sender of a key-rejected or tampered record, which no audit
    record holds (nothing authenticated it)."""
    keys = FileKeyStore(tmp_path, create=True)
    for party in ("wmp", "worker"):
        keys.ensure_party(party)
    sealed = Sealer("wmp", keys).seal(
        b"{}", event_id=EVENT, recipient="worker", schema=SCHEMA_EVENT, topic=WMP
    )
    text = opened_text("3", {"value": _b64(sealed.value), "headers": [], "key": None})
    assert f"event id {EVENT}, sender wmp, recipient worker" in text
    assert "key: (none)" in text


def test_a_copy_made_before_keys_were_kept_says_so() -> None:
    text = opened_text("0", {"value": "", "headers": []})
    assert "key: (not kept" in text


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--open", "x"], "--open: a copy's offset"),
        (["--dir", "keys"], "--dir opens a copy: give --open too"),
        (["--open", "3", "--reason", "malformed"], "--open opens one copy"),
        (["--since", "yesterday"], "--since: not an ISO 8601 date"),
    ],
)
def test_a_mistake_on_the_command_line_is_one_line_and_exit_2(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from broker.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["audit", "quarantine", *argv])
    err = capsys.readouterr().err
    assert (exited.value.code, err.count("\n")) == (2, 1)
    assert said in err
