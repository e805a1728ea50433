"""``accord publish``: the report (rejected rows, the count sent) is printed even when a send
fails part way, with the first line not sent (where the event's row starts, in a CSV with
multi-line fields too); ``--from-line`` finishes the job; a keystore that cannot seal to the
broker stops it (and ``accord tail``) in one line before Kafka is contacted, and one that can,
with the configured KEM, does not."""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import TopicAuthorizationFailedError

from broker.cli import _publish
from broker.config import KemSuite
from broker.devkafka import free_port
from broker.errors import SendUnconfirmed, TransportError
from broker.events import ContactEvent, parse_event
from broker.kafka import access_denied, translated
from broker.keys import FileKeyStore, init_keystores
from broker.sdk import Publisher
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

    warnings = staticmethod(Publisher.warnings)  # the real one: what the CLI prints

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


def test_a_concern_with_an_empty_justification_is_published_with_one_warning_line_per_row(
    export: tuple[Path, list[str]], run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Valid, so sent; but the sender is told it will not override consent, not left to find
    out from the decisions."""
    path, ids = export
    monkeypatch.setattr(_FailingPublisher, "fail_on", None)
    lines = path.read_text().splitlines()
    for n, justification in ((2, ""), (5, "\u200b")):
        event = json.loads(lines[n - 1])
        event["safeguarding"] = {"concern": True, "justification": justification}
        lines[n - 1] = json.dumps(event)
    path.write_text("\n".join(lines) + "\n")
    code, out, err = run_cli(["publish", "--as", "wmp", str(path)])
    assert code == 1  # line 3 is still rejected
    assert ids[1] in _FailingPublisher.sent
    assert ids[4] in _FailingPublisher.sent
    assert out.strip() == "7 published, 1 rejected"
    said = "safeguarding.concern is true but its justification is empty: it will not " \
        "override consent (docs/policy-language.md)"  # fmt: skip
    warnings = [line for line in err.splitlines() if "safeguarding" in line]
    assert warnings == [f"line 2: {said}", f"line 5: {said}"]


async def _refused_by_the_acls(what: str) -> None:
    """What the SDK raises when Kafka's ACLs refuse the login the topic: translated, then
    given up on as unconfirmed (broker.sdk._bounded), the refusal kept as its cause."""
    try:
        async with translated(what, principal="wmp"):
            raise TopicAuthorizationFailedError({"accord.ingress.wmp"})
    except TransportError as exc:
        raise SendUnconfirmed(f"{exc}; it is not sent again") from exc


@pytest.mark.parametrize("first_chunk_goes", [False, True])
def test_a_send_refused_by_kafka_s_acls_is_one_error_line_when_nothing_went(
    first_chunk_goes: bool,
    export: tuple[Path, list[str]],
    run_cli: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A walkthrough: 'stopped at line 1 ... finish with --from-line 1' came first and the
    refusal last, though no retry helps until a grant changes. Once some events went, where
    it stopped still matters (a grant withdrawn mid-run)."""
    path, _ = export
    fail_on = 2 if first_chunk_goes else 1

    async def publish_many(self: _FailingPublisher, events: Iterable[ContactEvent]) -> list[None]:
        self.calls += 1
        if self.calls == fail_on:
            await _refused_by_the_acls("publishing to accord.ingress.wmp")
        return [None for _ in events]

    monkeypatch.setattr(_FailingPublisher, "publish_many", publish_many)
    code, out, err = run_cli(["publish", "--as", "wmp", str(path)])
    lines = err.strip().splitlines()
    assert code == 1
    assert lines[-1].startswith("accord: error: publishing to accord.ingress.wmp: Kafka refused")
    if first_chunk_goes:
        assert out.strip() == "2 published, 1 rejected, 5 not confirmed"
        assert any(x.startswith("stopped at line 4") for x in lines)
    else:
        assert (out, len(lines)) == ("", 1)


def test_only_kafka_s_refusals_count_as_access_denied() -> None:
    assert not access_denied(TransportError("publishing: KafkaTimeoutError"))
    with pytest.raises(TransportError) as refused:
        asyncio.run(_refused_by_the_acls("publishing"))
    assert access_denied(refused.value)


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


@pytest.fixture
def csv_export(export: tuple[Path, list[str]]) -> tuple[Path, list[str]]:
    """Four events, one CSV row each, every row two lines long (a summary with a line break):
    the events start on lines 2, 4, 6 and 8."""
    path, _ = export
    fam = SyntheticFamilies(seed=8, today=AT.date())
    events = [
        fam.event("police.domestic_incident", "wmp", subjects=[fam.subject("child")],
                  occurred_at=AT - timedelta(days=1))
        for _ in range(4)
    ]  # fmt: skip
    rows = [
        {"event_id": str(e["event_id"]), "type": e["type"], "sender": "wmp",
         "occurred_at": AT.isoformat(), "need_level": str(e["need_level"]),
         "summary": "Seen at home.\nFollow up.", **{k: str(v) for k, v in s.items()}}
        for e in events for s in e["subjects"]
    ]  # fmt: skip
    path = path.with_suffix(".csv")
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path, [str(e["event_id"]) for e in events]


def test_a_csv_send_failing_part_way_says_the_line_its_first_unsent_event_starts_on(
    csv_export: tuple[Path, list[str]], run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, ids = csv_export
    monkeypatch.setattr(_FailingPublisher, "fail_on", 2)  # the events of lines 6 and 8
    code, out, err = run_cli(["publish", "--as", "wmp", str(path)])
    assert (code, out.strip()) == (1, "2 published, 0 rejected, 2 not confirmed")
    assert _FailingPublisher.sent == ids[:2]
    assert err.strip().splitlines()[0].startswith("stopped at line 6: every event before it")
    assert f"--from-line 6 {path}" in err


def test_from_line_in_the_middle_of_a_csv_row_skips_the_event_that_started_before(
    csv_export: tuple[Path, list[str]], run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Line 5 is the second line of the event starting on line 4: that event is not sent."""
    path, ids = csv_export
    monkeypatch.setattr(_FailingPublisher, "fail_on", None)
    code, out, _ = run_cli(["publish", "--as", "wmp", "--from-line", "5", str(path)])
    assert (code, out.strip()) == (0, "2 published, 0 rejected")
    assert _FailingPublisher.sent == ids[2:]


# -- the configured KEM: the CLI's clients seal with the settings' envelope -----------------

_CLIENTS = [(["publish", "--as", "wmp", "EXPORT"], "wmp"),
            (["tail", "--as", "cog-tipton", "--by", "x"], "cog-tipton")]  # fmt: skip


@pytest.fixture(scope="module")
def x25519_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An x25519 deployment's keystores, the signed directory imported (keys init)."""
    root = tmp_path_factory.mktemp("keys")
    init_keystores(root, ["wmp", "cog-tipton"], passphrase=None, kem=KemSuite.X25519)
    return root


def _run_against_closed_kafka(
    argv: list[str], party: str, keys: Path, tmp_path: Path, run_cli: Run, mp: pytest.MonkeyPatch
) -> tuple[int, str, str]:
    mp.setenv("ACCORD_HOME", str(tmp_path))
    mp.setenv("ACCORD_KEYSTORE__PATH", str(keys))
    mp.setenv("ACCORD_KAFKA__SECURITY_PROTOCOL", "PLAINTEXT")
    mp.setenv("ACCORD_KAFKA__BOOTSTRAP", f"127.0.0.1:{free_port()}")  # nothing listens
    export = tmp_path / "export.jsonl"
    export.write_text(json.dumps(SyntheticFamilies(seed=7).event(sender="wmp")) + "\n")
    code, out, err = run_cli([str(export) if a == "EXPORT" else a for a in argv])
    return code, out, "\n".join(x for x in err.splitlines() if x.startswith("accord: error:"))


@pytest.mark.parametrize(("argv", "party"), _CLIENTS)
def test_an_x25519_deployments_keystore_passes_the_check_when_x25519_is_configured(
    argv: list[str],
    party: str,
    x25519_keys: Path,
    tmp_path: Path,
    run_cli: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ACCORD_ENVELOPE__KEM=x25519: the keystore is fine, so the next thing to fail is Kafka."""
    monkeypatch.setenv("ACCORD_ENVELOPE__KEM", "x25519")
    code, out, err = _run_against_closed_kafka(
        argv, party, x25519_keys, tmp_path, run_cli, monkeypatch
    )
    assert code == 1
    assert err.startswith("accord: error: connecting to Kafka at 127.0.0.1:"), err
    assert out == ""


@pytest.mark.parametrize(("argv", "party"), _CLIENTS)
def test_a_client_configured_for_the_other_kem_says_so_not_to_import_the_directory(
    argv: list[str],
    party: str,
    x25519_keys: Path,
    tmp_path: Path,
    run_cli: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The x25519 deployment's keystore, ACCORD_ENVELOPE__KEM left at the hybrid default."""
    monkeypatch.delenv("ACCORD_ENVELOPE__KEM", raising=False)
    code, out, err = _run_against_closed_kafka(
        argv, party, x25519_keys, tmp_path, run_cli, monkeypatch
    )
    assert code == 1
    assert err == (
        "accord: error: the broker's (worker) live encryption key is x25519, and this client "
        "is configured for mlkem768-x25519 (ACCORD_ENVELOPE__KEM; in the SDK, envelope=): "
        "configure the KEM the deployment's keys use"
    )
    assert out == ""
