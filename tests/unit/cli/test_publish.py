"""``accord publish``: the report (rejected rows, the count sent) is printed even when a send
fails part way, with the first line not sent; ``--from-line`` finishes the job; a keystore
that cannot seal to the broker stops it in one line before Kafka is contacted."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from broker.cli import _publish
from broker.devkafka import free_port
from broker.errors import TransportError
from broker.events import ContactEvent, parse_event
from broker.keys import FileKeyStore
from broker.synthetic import SyntheticFamilies
from tests.unit.audit.conftest import Run

BAD_LINE = 3  # a bad NHS number on line 3
AT = datetime(2026, 11, 22, 12, tzinfo=UTC)


class _FailingPublisher:
    """A fake publisher whose transport fails on the ``fail_on``-th ``publish_many``."""

    fail_on: int | None = 3
    sent: list[str] = []  # noqa: RUF012  # what the last one made sent, read by the tests

    def __init__(self, party: str, *_: Any, **__: Any) -> None:
        self.party, self.topic, self.calls = party, f"accord.ingress.{party}", 0
        _FailingPublisher.sent = []

    async def __aenter__(self) -> _FailingPublisher:
        return self

    async def __aexit__(self, *_: object) -> None:
        pass

    def validate(self, data: Mapping[str, Any]) -> ContactEvent:
        return parse_event(data, now=AT)

    async def publish_many(self, events: Iterable[ContactEvent]) -> list[None]:
        self.calls += 1
        if self.calls == self.fail_on:
            raise TransportError("publishing to accord.ingress.wmp: KafkaTimeoutError")
        ids = [str(e.event_id) for e in events]
        _FailingPublisher.sent += ids
        return [None for _ in ids]


@pytest.fixture
def export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[str]]:
    """Eight lines, line 3 bad: seven good events, sent two at a time; the event ids in order."""
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    monkeypatch.setenv("ACCORD_KEYSTORE__PATH", str(tmp_path / "keys"))
    monkeypatch.setenv("ACCORD_KAFKA__SECURITY_PROTOCOL", "PLAINTEXT")
    FileKeyStore(tmp_path / "keys", create=True)  # the fake publisher never asks it anything
    monkeypatch.setattr(_publish, "_CHUNK", 2)
    monkeypatch.setattr("broker.sdk.Publisher", _FailingPublisher)
    fam = SyntheticFamilies(seed=7, today=AT.date())
    events = [fam.event(sender="wmp") for _ in range(8)]
    events[BAD_LINE - 1]["subjects"][0]["nhs_number"] = "9990000001"  # check digit wrong
    path = tmp_path / "export.jsonl"
    path.write_text("".join(json.dumps(e, default=str) + "\n" for e in events))
    return path, [str(e["event_id"]) for e in events]


def test_a_send_failing_on_the_third_chunk_still_reports_rejections_and_where_it_stopped(
    export: tuple[Path, list[str]], run_cli: Run
) -> None:
    path, ids = export
    code, out, err = run_cli(["publish", "--as", "wmp", str(path)])
    assert code == 1
    # Chunks: lines 1-2, 4-5 went; 6-7 failed; 8 never tried.
    assert _FailingPublisher.sent == [ids[0], ids[1], ids[3], ids[4]]
    assert out.strip() == "4 published, 1 rejected, 3 not confirmed"
    lines = err.strip().splitlines()
    assert lines[0].startswith(f"rejected {path} line {BAD_LINE}: subjects[0].nhs_number:")
    assert lines[1].startswith("stopped at line 6: every event before it was published")
    assert f"'accord publish --as wmp --from-line 6 {path}'" in lines[1]
    assert "quarantined by the broker as a replay" in lines[1]
    assert lines[2] == "accord: error: publishing to accord.ingress.wmp: KafkaTimeoutError"
    assert len(lines) == 3


def test_from_line_sends_only_the_events_from_that_line_on(
    export: tuple[Path, list[str]], run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, ids = export
    monkeypatch.setattr(_FailingPublisher, "fail_on", None)
    code, out, err = run_cli(["publish", "--as", "wmp", "--from-line", "6", str(path)])
    assert (code, err.strip()) == (0, "")  # the bad line 3 is before it: not read again
    assert _FailingPublisher.sent == ids[5:]
    assert out.strip() == "3 published, 0 rejected"


@pytest.mark.parametrize(
    ("argv", "party"),
    [(["publish", "--as", "wmp", "EXPORT"], "wmp"), (["tail", "--as", "hub-a"], "hub-a")],
)
def test_a_keystore_without_the_key_directory_is_one_line_before_kafka(
    argv: list[str], party: str, tmp_path: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'accord keys init --party' without 'accord keys import': nothing to seal to or verify."""
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    monkeypatch.setenv("ACCORD_KEYSTORE__PATH", str(tmp_path / "keys"))
    # Nothing listens here: a connection attempt would be an error line of its own.
    monkeypatch.setenv("ACCORD_KAFKA__BOOTSTRAP", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("ACCORD_KAFKA__USERNAME", party)
    monkeypatch.setenv("ACCORD_KAFKA__PASSWORD", "pw")
    FileKeyStore(tmp_path / "keys", create=True).ensure_party(party)
    export = tmp_path / "export.jsonl"
    export.write_text(json.dumps(SyntheticFamilies(seed=7).event(sender="wmp")) + "\n")
    code, out, err = run_cli([str(export) if a == "EXPORT" else a for a in argv])
    assert code == 1
    [line] = [x for x in err.splitlines() if "keystore_unprotected" not in x]
    assert line.startswith("accord: error: this keystore holds no live ")
    assert "(accord keys import)" in line
    assert out == ""
