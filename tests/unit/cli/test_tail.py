"""``accord tail``: each record is acknowledged, then shown, then committed; nothing is read
before ``--by`` is known good; ``--max`` stops where it says; warnings stay off stdout."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from broker._canonical import canonical_json
from broker.cli import _tail
from broker.config import EnvelopeSettings, KafkaSettings, load_settings
from broker.envelope import Sealer
from broker.errors import UsageError
from broker.keys import SPECIAL_PRINCIPALS, FileKeyStore
from broker.sdk import Subscriber
from broker.topics import deliver

PARTY = "hub-a"
_REAL_PRINT = _tail._print_record


class _Consumer:
    def __init__(self, messages: list[Any], log: list[str]) -> None:
        self.messages, self.log, self.position = messages, log, 0

    async def getone(self) -> Any:
        if self.position >= len(self.messages):
            await asyncio.sleep(3600)
        self.position += 1
        return self.messages[self.position - 1]

    async def getmany(self, timeout_ms: int = 0, max_records: int | None = None) -> Any:
        del max_records  # one at a time, as asked
        if self.position >= len(self.messages):
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        self.position += 1
        return {"tp": [self.messages[self.position - 1]]}

    async def commit(self) -> None:
        self.log.append(f"commit {self.position}")

    def seek(self, _tp: Any, offset: int) -> None:
        self.position = offset

    def assignment(self) -> set[Any]:
        return set()  # parked records are retried only on assigned partitions: none here

    async def stop(self) -> None:
        pass


class _Producer:
    """The subscriber's bounded sender of acknowledgements (broker.sdk._bounded)."""

    started = True

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def send(self, _what: str, records: list[Any]) -> list[None]:
        self.log.extend(f"ack to {r.topic}" for r in records)
        return [None for _ in records]

    async def stop(self) -> None:
        pass


def _delivery(event_id: str) -> dict[str, Any]:
    return {
        "kind": "delivery", "event_id": event_id, "recipient": PARTY, "outcome": "shared",
        "clauses": ["c"], "agreements": ["a"], "purpose": "early_help",
        "lawful_basis": {"article6": "public_task"}, "policy_version": "sha256:x",
        "decided_at": "2026-11-21T22:40:00Z", "view": {"event_id": event_id},
    }  # fmt: skip


@pytest.fixture
def tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Runs ``_tail`` over three delivered records; returns (log, printed event ids)."""
    keys = FileKeyStore(tmp_path / "keys", create=True)
    keys.ensure_party(PARTY)  # the default KEM: the subscriber seals its acks with it
    keys.ensure_party("worker", purposes=SPECIAL_PRINCIPALS["worker"])
    sealer = Sealer("worker", keys, EnvelopeSettings())
    messages = []
    for offset in range(3):
        eid = str(uuid.uuid4())
        sealed = sealer.seal(canonical_json(_delivery(eid)), event_id=eid, recipient=PARTY,
                             schema="shared-record.v1", topic=deliver(PARTY))  # fmt: skip
        message = {
            "topic": deliver(PARTY), "partition": 0, "offset": offset, "key": None, "timestamp": 0
        }  # fmt: skip
        messages.append(SimpleNamespace(**message, value=sealed.value, headers=sealed.headers))
    log: list[str] = []
    consumer, producer = _Consumer(messages, log), _Producer(log)

    async def start(self: Subscriber) -> None:
        self._memory = self._open_memory()  # type: ignore[attr-defined]
        self._consumer, self._acks = consumer, producer  # type: ignore[assignment]

    monkeypatch.setattr(Subscriber, "start", start)
    monkeypatch.setattr(_tail, "keystore", lambda *_: keys)
    monkeypatch.setattr(_tail, "kafka_as", lambda *_: KafkaSettings(bootstrap="x:1"))
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    run = _Run(log, consumer)
    monkeypatch.setattr(_tail, "_print_record", lambda *_: run.show())
    return run


class _Run:
    def __init__(self, log: list[str], consumer: _Consumer) -> None:
        self.log, self.consumer, self.printed = log, consumer, 0

    def show(self) -> None:
        self.printed += 1
        self.log.append(f"print {self.printed}")

    def __call__(self, **options: Any) -> list[str]:
        args = {"group": f"{PARTY}.tail", "as_json": True, "max_records": None, "idle": 0.2,
                "by": "duty-1", **options}  # fmt: skip
        asyncio.run(_tail._tail(load_settings(), PARTY, **args))
        return self.log


def test_each_record_is_acknowledged_then_shown_then_committed(tail: _Run) -> None:
    assert tail() == [
        "ack to accord.access", "print 1",
        "commit 1", "ack to accord.access", "print 2",
        "commit 2", "ack to accord.access", "print 3",
        "commit 3",
    ]  # fmt: skip


def test_max_shows_and_commits_exactly_that_many(tail: _Run) -> None:
    assert tail(max_records=1) == ["ack to accord.access", "print 1", "commit 1"]
    assert tail.consumer.position == 1


def test_free_text_for_by_reads_nothing(tail: _Run) -> None:
    with pytest.raises(UsageError, match="--by: a staff or system id"):
        tail(by="Jane Smith")
    assert (tail.log, tail.consumer.position) == ([], 0)


@pytest.mark.parametrize("by", ["9997672380", "943-476-5919", "duty/07700.900123"])
def test_an_nhs_or_telephone_number_for_by_is_one_line_never_echoed_and_reads_nothing(
    by: str, tail: _Run, capsys: pytest.CaptureFixture[str]
) -> None:
    """``accord tail --by 9997672380``: the number would be "opened by" in children's SARs."""
    from broker.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["tail", "--as", PARTY, "--json", "--idle", "0.2", "--by", by])
    assert exit_info.value.code != 0
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "--by: a staff or system id, never an NHS or telephone number" in line
    assert by not in line
    assert (tail.log, tail.consumer.position) == ([], 0)


def test_an_unopenable_record_is_warned_on_stderr_never_among_json_lines(
    tail: _Run, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``accord tail --json``: stdout stays one record per line when a record will not open."""
    from broker.cli import main

    tail.consumer.messages[1].value = b"not an envelope"
    monkeypatch.setattr(_tail, "_print_record", _REAL_PRINT)
    main(["tail", "--as", PARTY, "--json", "--idle", "0.2", "--by", "duty-1"])
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert [json.loads(line)["kind"] for line in lines] == ["delivery", "delivery"]
    assert "record_unopenable" in err
    assert "record_unopenable" not in out


def test_a_record_the_keystore_cannot_open_stops_tail_in_one_line_naming_it(
    tail: _Run, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Sealed by the broker to a key of the party's this keystore does not hold (it was
    restored from a backup older than a rotation): tail stops there, saying where and what
    to do, rather than go past it (it would never be read again)."""
    from broker.cli import main

    keys = _tail.keystore(None, None)  # the fixture's
    shutil.copytree(keys.path, tmp_path / "rotated")
    other = FileKeyStore(tmp_path / "rotated")
    other.rotate(PARTY)
    eid = str(uuid.uuid4())
    sealed = Sealer("worker", other, EnvelopeSettings()).seal(
        canonical_json(_delivery(eid)), event_id=eid, recipient=PARTY,
        schema="shared-record.v1", topic=deliver(PARTY),
    )  # fmt: skip
    tail.consumer.messages[1].value = sealed.value
    tail.consumer.messages[1].headers = sealed.headers
    monkeypatch.setattr(_tail, "_print_record", _REAL_PRINT)
    with pytest.raises(SystemExit) as exit_info:
        main(["tail", "--as", PARTY, "--json", "--idle", "0.2", "--by", "duty-1"])
    assert exit_info.value.code != 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 1  # the record before it
    [line] = err.strip().splitlines()
    assert "partition 0 offset 1" in line
    assert "restore the keystore from its backup" in line
    assert tail.consumer.position == 1  # read again next time
    assert tail.log[-1] == "commit 1"  # the first only


@pytest.fixture
def tail_options(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """``accord tail``'s command line, up to ``_tail``: what it was given."""
    given: dict[str, Any] = {}

    async def fake_tail(_settings: Any, _party: str, **options: Any) -> None:
        given.update(options)

    monkeypatch.setattr(_tail, "_tail", fake_tail)
    return given


def test_by_defaults_to_the_person_logged_in_never_the_tool(
    tail_options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An IG officer reading a child's disclosure log must see who opened each record."""
    monkeypatch.setattr("getpass.getuser", lambda: "kim.ward")
    from broker.cli import main

    main(["tail", "--as", PARTY])
    assert tail_options["by"] == "kim.ward"
    main(["tail", "--as", PARTY, "--by", "duty-7"])
    assert tail_options["by"] == "duty-7"


@pytest.mark.parametrize("login", ["Jane Smith", None, "9997672380"])
def test_without_a_usable_login_name_by_must_be_given(
    login: str | None,
    tail_options: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """One line, naming --by, never the login name (a person's name may be in it)."""

    def getuser() -> str:
        if login is None:
            raise OSError("no login name")
        return login

    monkeypatch.setattr("getpass.getuser", getuser)
    from broker.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["tail", "--as", PARTY])
    assert exit_info.value.code != 0
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "--by" in line
    assert "Jane" not in line
    assert "9997672380" not in line
    assert tail_options == {}


def test_a_record_signed_by_a_broker_key_not_imported_is_parked_and_tail_says_so_at_stop(
    tail: _Run, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The broker signed it with a key this keystore has not imported yet: tail goes on to
    the next record and, at stop, says how many are parked and how they open."""
    from broker.cli import main

    keys = _tail.keystore(None, None)  # the fixture's
    shutil.copytree(keys.path, tmp_path / "worker")
    worker = FileKeyStore(tmp_path / "worker")
    worker.rotate("worker")  # its new signing key is not in the hub's keystore
    eid = str(uuid.uuid4())
    sealed = Sealer("worker", worker, EnvelopeSettings()).seal(
        canonical_json(_delivery(eid)), event_id=eid, recipient=PARTY,
        schema="shared-record.v1", topic=deliver(PARTY),
    )  # fmt: skip
    tail.consumer.messages[1].value = sealed.value
    tail.consumer.messages[1].headers = sealed.headers
    monkeypatch.setattr(_tail, "_print_record", _REAL_PRINT)
    main(["tail", "--as", PARTY, "--json", "--idle", "0.2", "--by", "duty-1"])
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 2  # the records either side of it
    assert "record_parked" in err
    assert f"1 record(s) for {PARTY} are parked" in err
    assert "accord keys import" in err
    assert eid not in err


def test_a_record_signed_by_a_broker_key_expired_before_it_was_read_stops_tail(
    tail: _Run, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The worker rotated and its old signing key's grace ran out while this group was
    behind: tail stops on the first record it signed, in one line, exit non-zero, committing
    nothing, rather than drop it as unknown-signer and exit 0."""
    from broker.cli import main
    from broker.envelope import KeyPurpose

    keys = _tail.keystore(None, None)  # the fixture's: it signed the three records
    [old] = [k for k in keys.keys("worker") if k.purpose is KeyPurpose.SIGN]
    keys.rotate("worker", grace=timedelta(0))
    monkeypatch.setattr(_tail, "_print_record", _REAL_PRINT)
    with pytest.raises(SystemExit) as exit_info:
        main(["tail", "--as", PARTY, "--json", "--idle", "0.2", "--by", "duty-1"])
    assert exit_info.value.code != 0
    out, err = capsys.readouterr()
    assert out == ""
    [line] = err.strip().splitlines()
    assert "partition 0 offset 0" in line
    assert f"the broker signed it with its key {old.key_id}, expired" in line
    assert (tail.consumer.position, tail.log) == (0, [])


def test_a_record_signed_by_a_broker_key_since_revoked_is_reported_and_tail_goes_on(
    tail: _Run, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Revoked means compromised: what that key signed is anybody's, so tail reports each
    such record and goes past it, exit 0, rather than stop at every start."""
    from broker.cli import main
    from broker.envelope import KeyPurpose

    keys = _tail.keystore(None, None)
    [old] = [k for k in keys.keys("worker") if k.purpose is KeyPurpose.SIGN]
    keys.rotate("worker")
    keys.revoke(old.key_id)
    monkeypatch.setattr(_tail, "_print_record", _REAL_PRINT)
    main(["tail", "--as", PARTY, "--json", "--idle", "0.2", "--by", "duty-1"])
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("unknown-signer") == 3
