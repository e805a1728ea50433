"""After a keystore theft: which events did the stolen key sign, and where did they go?

``accord audit received --signed-by KEY`` lists the events accepted under a signing key
(the ``received`` records' ``signer_key_id``) with the parties each was delivered to, on
SQLite and PostgreSQL alike, naming no child, after writing its own look-up record; ``accord
audit quarantine`` shows and filters by the key a quarantined record claims or verified
under. Kafka and the password are faked here, as in test_cli_lookups.py.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import broker.cli._audit_received
from broker.audit import AuditKind, AuditRecord, ChainWriter, KeystoreAuditSigner
from broker.audit import KeystoreAuditVerifier as Verifier
from broker.cli._audit_quarantine_view import as_json as lines_json
from broker.cli._audit_quarantine_view import chosen, join, table
from broker.governance import AuditStore, Window, events_signed_by
from broker.keys import FileKeyStore
from broker.linkage import Linker
from broker.principals import Principal
from tests.unit.audit.conftest import CHILD_NHS, T0, Run, decision, index_records

STOLEN, OTHER = "5" * 32, "a" * 32
RECEIVED = ["audit", "received", "--as", "ig.jo", "--reason", "security_incident"]


Events = list[tuple[str, str, list[str]]]


def _chain(linker: Linker, keys: FileKeyStore, chain: str, sender: str, events: Events,
           start: int = 0) -> list[AuditRecord]:  # fmt: skip
    """Per (event id, signer key id, recipients delivered to): received, decided, delivered."""
    tick = iter(range(start, 10_000))
    w = ChainWriter(chain, clock=lambda: T0 + timedelta(minutes=next(tick)))
    child = linker.from_nhs_number(CHILD_NHS)
    out = []
    for event_id, key_id, recipients in events:
        out.append(w.append(
            AuditKind.RECEIVED, event_id=event_id, party=sender, subject_keys=[child],
            data={"type": "police.domestic_incident", "subject_roles": {"child": 1},
                  "topic": f"accord.ingress.{sender}", "partition": 0, "offset": 1,
                  "signer_key_id": key_id},
        ))  # fmt: skip
        for r in recipients:
            out.append(w.append(AuditKind.DECIDED, event_id=event_id, party=r,
                                subject_keys=[child], data=decision("shared")))  # fmt: skip
            out.append(w.append(AuditKind.DELIVERED, event_id=event_id, party=r,
                                subject_keys=[child],
                                data={"topic": f"accord.deliver.{r}", "outcome": "shared",
                                      "fields": []}))  # fmt: skip
    out.append(w.checkpoint(KeystoreAuditSigner(keys, Principal.WORKER)))
    return out


@pytest.fixture
def signed(
    store: AuditStore, verifier: Verifier, linker: Linker, keys: FileKeyStore
) -> list[AuditRecord]:
    records = _chain(linker, keys, "worker:accord.ingress.wmp-0", "wmp", [
        ("e1", STOLEN, ["coord", "school-1"]),
        ("e2", OTHER, ["coord"]),
        ("e3", STOLEN, []),  # decided for no one
        ("e1", STOLEN, ["hub-a"]),  # e1 again (re-sent after a quarantine): its own receipt
    ])  # fmt: skip
    # Another sender's event under the same id, on its own chain: not answered by wmp's.
    records += _chain(linker, keys, "worker:accord.ingress.swbh-0", "swbh",
                      [("e1", OTHER, ["coord"])], start=100)  # fmt: skip
    assert index_records(store, verifier, records).breaks == []
    return records


def test_the_events_a_key_signed_are_listed_with_whom_each_went_to(
    signed: list[AuditRecord], store: AuditStore
) -> None:
    found = events_signed_by(store, STOLEN, Window())
    assert [(e.event_id, e.sender, e.delivered_to) for e in found] == [
        ("e1", "wmp", ("coord", "school-1")),
        ("e3", "wmp", ()),
        ("e1", "wmp", ("hub-a",)),
    ]
    assert [(e.event_id, e.delivered_to) for e in events_signed_by(store, OTHER, Window())] == [
        ("e2", ("coord",)),
        ("e1", ("coord",)),  # swbh's e1
    ]
    assert events_signed_by(store, "0" * 32, Window()) == []
    late = events_signed_by(store, STOLEN, Window(since=T0 + timedelta(minutes=9)))
    assert [e.audit for e in late] == [found[2].audit]
    with pytest.raises(ValueError, match="key id"):
        events_signed_by(store, "%", Window())


def test_a_copy_re_sent_under_another_key_keeps_its_deliveries(
    store: AuditStore, verifier: Verifier, linker: Linker, keys: FileKeyStore
) -> None:
    """Re-sent under the new key after a quarantine: what went out after that receipt is
    not the stolen key's."""
    records = _chain(linker, keys, "worker:accord.ingress.wmp-1", "wmp", [
        ("e7", STOLEN, ["coord"]),
        ("e7", OTHER, ["hub-a"]),
    ])  # fmt: skip
    assert index_records(store, verifier, records).breaks == []
    assert [(e.event_id, e.delivered_to) for e in events_signed_by(store, STOLEN, Window())] == [
        ("e7", ("coord",)),
    ]
    assert [(e.event_id, e.delivered_to) for e in events_signed_by(store, OTHER, Window())] == [
        ("e7", ("hub-a",)),
    ]


@pytest.fixture
def quiet_sign_in(monkeypatch: pytest.MonkeyPatch, lookups: list[dict[str, Any]]) -> None:
    monkeypatch.setattr(broker.cli._audit_received, "sign_in", lambda _s, name, **_kw: name)
    monkeypatch.setattr(broker.cli._audit_received, "index_once", lambda *_a: None)


def test_the_command_lists_them_after_recording_the_look_up_and_names_no_child(
    signed: list[AuditRecord], audit_db_url: str, run_cli: Run,
    lookups: list[dict[str, Any]], quiet_sign_in: None,
) -> None:  # fmt: skip
    code, out, err = run_cli([*RECEIVED, "--signed-by", STOLEN.upper(), "--db", audit_db_url,
                              "--format", "json"])  # fmt: skip
    assert (code, err) == (0, "")
    shown = json.loads(out)
    assert shown["signed_by"] == STOLEN
    assert shown["key"] is None  # not a key of this keystore's directory
    assert [(e["event_id"], e["sender"], e["event_type"], e["delivered_to"])
            for e in shown["events"]] == [
        ("e1", "wmp", "police.domestic_incident", ["coord", "school-1"]),
        ("e3", "wmp", "police.domestic_incident", []),
        ("e1", "wmp", "police.domestic_incident", ["hub-a"]),
    ]  # fmt: skip
    assert shown["events"][0]["received_at"] == "2026-11-22T08:00:00Z"
    [lookup] = lookups
    assert (lookup["page"], lookup["officer"]) == ("cli.received", "ig.jo")
    assert lookup["detail"] == {"purpose": "security_incident", "signed_by": STOLEN,
                                "events": "3"}  # fmt: skip
    assert lookup["subject_keys"] == ()
    # No child: neither their subject key nor anything else of theirs.
    child = signed[0].subject_keys[0]
    assert child not in out
    assert CHILD_NHS not in out
    code, text, err = run_cli([*RECEIVED, "--signed-by", STOLEN, "--db", audit_db_url,
                               "--since", "2026-11-22", "--until", "2026-11-22"])  # fmt: skip
    assert (code, err) == (0, "")
    assert "3 events accepted under it" in text.splitlines()[0]
    assert "coord, school-1" in text
    assert child not in text


def test_the_key_is_named_as_the_directory_lists_it(
    signed: list[AuditRecord], audit_db_url: str, run_cli: Run, keys: FileKeyStore,
    lookups: list[dict[str, Any]], quiet_sign_in: None,
) -> None:  # fmt: skip
    worker_key = keys.signing_key("worker").key_id  # a key this keystore lists
    code, out, err = run_cli([*RECEIVED, "--signed-by", worker_key, "--db", audit_db_url])
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == (
        f"key {worker_key}: worker sign key, active; 0 events accepted under it"
    )


@pytest.mark.parametrize("key", ["nonsense", "5" * 31, "%", "5" * 32 + "%"])
def test_a_key_id_that_is_not_one_is_one_line_before_anything_is_read(
    key: str, run_cli: Run, lookups: list[dict[str, Any]]
) -> None:
    code, out, err = run_cli([*RECEIVED, "--signed-by", key])
    assert code == 2
    assert out == ""
    assert "--signed-by: a key id" in err
    assert len(err.strip().splitlines()) == 1
    assert lookups == []


def test_the_command_refuses_without_a_reason_off_a_terminal(
    keys: FileKeyStore, run_cli: Run, lookups: list[dict[str, Any]]
) -> None:
    code, _, err = run_cli(["audit", "received", "--as", "ig.jo", "--signed-by", STOLEN])
    assert code == 2
    assert "security_incident" in err  # among the reasons it names


def _quarantined(seq: int, reason: str, **keys: str | None) -> AuditRecord:
    return AuditRecord(
        chain="worker-0", seq=seq, at=T0 + timedelta(minutes=seq), kind=AuditKind.QUARANTINED,
        event_id=None, party="wmp",
        data={"reason": reason, "stage": "open", "topic": "accord.ingress.wmp",
              "partition": 0, "offset": seq, "digest": "ab" * 16, "size": 9, **keys},
        prev_hash="0" * 64, hash="1" * 64,
    )  # fmt: skip


def test_the_quarantine_list_shows_the_key_claimed_apart_from_one_verified() -> None:
    lines = join([], [
        _quarantined(1, "key-rejected", claimed_signer_key_id=STOLEN),
        _quarantined(2, "invalid-event", signer_key_id=STOLEN),
        _quarantined(3, "malformed", claimed_signer_key_id=None),
        _quarantined(4, "bad-signature", claimed_signer_key_id=OTHER),
        _quarantined(5, "unknown-sender"),  # from before 2026-12-08, or never opened
    ])  # fmt: skip
    text = table(lines).splitlines()
    assert "SIGNER KEY" in text[0]
    assert f"{STOLEN} (claimed)" in text[1]
    assert STOLEN in text[2]
    assert "(claimed)" not in text[2]
    shown = json.loads(lines_json(lines))
    assert [(x["signer_key_id"], x["claimed_signer_key_id"]) for x in shown] == [
        (None, STOLEN), (STOLEN, None), (None, None), (None, OTHER), (None, None),
    ]  # fmt: skip
    assert [x.offset for x in chosen(lines, signed_by=STOLEN)] == [1, 2]


def test_the_look_ups_use_the_indexes_made_for_them(tmp_path: Path) -> None:
    """Receipts by the (kind, at) index, not every record's body; the event's other
    receipts and its deliveries by event id."""
    from broker.governance._dialects import open_store

    store = open_store(None, home=tmp_path)
    conn = store._conn  # type: ignore[attr-defined]  # the SQLite connection under test
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    try:
        store.received_signed_by(STOLEN, Window())
        store.delivered_after([("worker:w-0", 3, "e1")])
    finally:
        conn.set_trace_callback(None)
    plans = [row[3] for sql in seen if sql.lstrip().upper().startswith("SELECT")
             for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")]  # fmt: skip
    searches = [p for p in plans if p.startswith("SEARCH")]
    assert len(searches) == 3, plans
    assert "audit_records_kind_at" in searches[0], plans
    assert all("audit_records_event_party" in p for p in searches[1:]), plans
    assert not any(p.startswith("SCAN") for p in plans), plans
    store.close()
