"""Operation Encompass lateness from the audit index (SQLite and PostgreSQL): the report's
section, the indexer's metrics, and the index made before notices were kept.

The notices are decided on a Friday evening, so their deadline is Monday's 08:30 (Europe/London,
GMT in November); the clock is moved, never waited for.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from broker.audit import (
    AuditKind,
    AuditRecord,
    ChainWriter,
    KeystoreAuditSigner,
    KeystoreAuditVerifier,
)
from broker.config import SchoolCalendar
from broker.governance import (
    AuditStore,
    Indexer,
    Window,
    governance_report,
    late_encompass_notices,
    open_store,
    overdue_encompass_notices,
)
from broker.governance._schema import MIGRATIONS
from broker.keys import FileKeyStore
from broker.linkage import Linker
from broker.principals import Principal
from tests.unit.audit.conftest import CHILD_NHS, Run, decision, fetched, index_records

FRIDAY_EVENING = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)
DEADLINE = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)  # Monday, start of the school day
SCHOOL_A, SCHOOL_B = "school-146201", "school-146202"


def encompass_notice_data(**extra: Any) -> dict[str, Any]:
    return decision("shared", recipient_kind="school", purpose="safeguarding", **extra)


class EncompassChain:
    """A worker chain written at times the test chooses."""

    def __init__(self, keys: FileKeyStore, linker: Linker, chain: str = "worker:enc") -> None:
        self.now = FRIDAY_EVENING
        self.writer = ChainWriter(chain, clock=lambda: self.now)
        self.signer = KeystoreAuditSigner(keys, Principal.WORKER)
        self.child = linker.from_nhs_number(CHILD_NHS)
        self.records: list[AuditRecord] = []

    def decided(self, event: str, party: str, data: dict[str, Any]) -> None:
        self.records.append(self.writer.append(
            AuditKind.DECIDED, event_id=event, party=party, subject_keys=[self.child], data=data
        ))  # fmt: skip

    def opened(self, event: str, party: str, at: datetime) -> None:
        self.now = at
        self.records.append(self.writer.append(
            AuditKind.OPENED, event_id=event, party=party,
            data={"by": f"{party}/key-adult", "purpose": "safeguarding", "at": at.isoformat()},
        ))  # fmt: skip

    def signed(self) -> list[AuditRecord]:
        out = [*self.records, self.writer.checkpoint(self.signer)]
        self.records = []
        return out


@pytest.fixture
def notices(keys: FileKeyStore, linker: Linker) -> EncompassChain:
    """Friday evening: four notices and three decisions that are not notices; over the
    weekend and on Monday, the schools open some of them."""
    c = EncompassChain(keys, linker)
    c.decided("e-open", SCHOOL_A, encompass_notice_data())  # never opened
    c.decided("e-ontime", SCHOOL_A, encompass_notice_data())
    c.decided("e-late", SCHOOL_B, encompass_notice_data())
    c.decided("e-override", SCHOOL_B, decision("shared_override", recipient_kind="school"))
    c.decided("e-hub", "cog-tipton", decision("shared"))  # a hub: no Encompass notice
    c.decided("e-refused", SCHOOL_A, decision("not_shared", recipient_kind="school"))
    c.decided("e-edu", SCHOOL_A, encompass_notice_data(event_type="education.attendance_concern"))
    c.opened("e-ontime", SCHOOL_A, DEADLINE - timedelta(minutes=20))
    c.opened("e-late", SCHOOL_B, DEADLINE + timedelta(minutes=45))
    c.opened("e-late", SCHOOL_B, DEADLINE + timedelta(hours=3))  # a second look changes nothing
    c.opened("e-override", SCHOOL_B, DEADLINE - timedelta(days=2))
    return c


def test_late_and_unread_notices_are_listed_by_school_and_on_time_ones_are_not(
    store: AuditStore, verifier: KeystoreAuditVerifier, notices: EncompassChain
) -> None:
    index_records(store, verifier, notices.signed())
    monday = DEADLINE + timedelta(hours=2)
    late = late_encompass_notices(store, SchoolCalendar(), monday)
    assert [(n.school, n.event_id, n.state) for n in late] == [
        (SCHOOL_A, "e-open", "open past deadline"),
        (SCHOOL_B, "e-late", "acknowledged late"),
    ]
    assert {n.deadline for n in late} == {DEADLINE}
    assert {n.notified_at for n in late} == {FRIDAY_EVENING}
    assert late[1].acknowledged_at == DEADLINE + timedelta(minutes=45)  # the first opening
    assert late[0].acknowledged_at is None
    assert [n.event_id for n in overdue_encompass_notices(store, SchoolCalendar(), monday)] == [
        "e-open"
    ]


def test_nothing_is_late_before_the_deadline_or_when_the_school_was_closed(
    store: AuditStore, verifier: KeystoreAuditVerifier, notices: EncompassChain
) -> None:
    index_records(store, verifier, notices.signed())
    sunday = DEADLINE - timedelta(hours=20)
    # At Sunday lunchtime e-late had not been opened yet, but its deadline was still ahead.
    assert [n.event_id for n in late_encompass_notices(store, SchoolCalendar(), sunday)] == []
    assert overdue_encompass_notices(store, SchoolCalendar(), sunday) == []
    # An INSET day on Monday moves every deadline to Tuesday's 08:30.
    inset = SchoolCalendar(closed=frozenset({date(2026, 11, 23)}))
    monday = DEADLINE + timedelta(hours=2)
    assert late_encompass_notices(store, inset, monday) == []
    tuesday = DEADLINE + timedelta(days=1, minutes=1)
    assert [n.event_id for n in late_encompass_notices(store, inset, tuesday)] == ["e-open"]


def test_the_governance_report_carries_the_late_notices_of_its_window(
    store: AuditStore, verifier: KeystoreAuditVerifier, notices: EncompassChain
) -> None:
    index_records(store, verifier, notices.signed())
    monday = DEADLINE + timedelta(hours=2)
    rep = governance_report(store, Window(), schools=SchoolCalendar(), now=monday)
    assert [n.event_id for n in rep.encompass_late] == ["e-open", "e-late"]
    before = Window(until=FRIDAY_EVENING)  # notices are counted by when they were sent
    assert governance_report(store, before, now=monday).encompass_late == ()


def _clock(at: list[datetime]) -> Callable[[], float]:
    def now() -> float:
        return at[0].timestamp()  # whatever the test has moved it to

    return now


def _sample(registry: CollectorRegistry, name: str, school: str) -> float | None:
    return registry.get_sample_value(name, {"school": school})


def test_the_indexer_gauges_overdue_notices_and_counts_each_once_by_school(
    store: AuditStore, verifier: KeystoreAuditVerifier, notices: EncompassChain
) -> None:
    registry = CollectorRegistry()
    now = [DEADLINE - timedelta(hours=1)]
    indexer = Indexer(store, verifier, kafka=None, registry=registry, clock=_clock(now))  # type: ignore[arg-type]  # no Kafka here
    records = notices.signed()
    assert indexer._commit(fetched(records))
    assert _sample(registry, "accord_audit_encompass_overdue", SCHOOL_A) is None  # not yet due
    now[0] = DEADLINE + timedelta(minutes=1)
    indexer.measure_deadlines()
    assert _sample(registry, "accord_audit_encompass_overdue", SCHOOL_A) == 1
    assert _sample(registry, "accord_audit_encompass_late_total", SCHOOL_A) == 1
    assert _sample(registry, "accord_audit_encompass_overdue", SCHOOL_B) is None  # opened
    now[0] += timedelta(hours=5)
    indexer.measure_deadlines()  # still overdue: gauged again, not counted again
    assert _sample(registry, "accord_audit_encompass_overdue", SCHOOL_A) == 1
    assert _sample(registry, "accord_audit_encompass_late_total", SCHOOL_A) == 1

    # The school opens it at last: nothing is overdue, the count of late notices stands.
    notices.opened("e-open", SCHOOL_A, now[0])
    assert indexer._commit(fetched(notices.signed(), start=len(records)))
    assert _sample(registry, "accord_audit_encompass_overdue", SCHOOL_A) == 0
    assert _sample(registry, "accord_audit_encompass_late_total", SCHOOL_A) == 1
    text = generate_latest(registry).decode()
    for secret in ("e-open", notices.child, CHILD_NHS):
        assert secret not in text


def test_an_index_made_before_notices_were_kept_finds_them_when_it_migrates(
    audit_db_url: str, audit_home: Path, verifier: KeystoreAuditVerifier, notices: EncompassChain,
) -> None:  # fmt: skip
    old = open_store(audit_db_url, home=audit_home)
    index_records(old, verifier, notices.signed())
    # Back to the index as migration 2 left it: the records, but no notices table.
    for sql in (
        "DROP TABLE encompass_notices",
        "ALTER TABLE override_reviews DROP COLUMN finding",  # and as 4 left it
        "ALTER TABLE override_reviews DROP COLUMN reference",
        "DROP INDEX audit_refused_chain_seq",  # and as 5 left it
        "DROP TABLE verify_runs",  # and as 6 left it
        "DROP INDEX audit_records_position",  # and as 7 left it
        "DELETE FROM schema_version WHERE version >= 3",
    ):
        with old._tx():  # type: ignore[attr-defined]  # the store's own transaction
            old._q(sql)  # type: ignore[attr-defined]
    assert old.schema_version() == 2
    old.close()
    store = open_store(audit_db_url, home=audit_home)
    try:
        assert store.schema_version() == len(MIGRATIONS)
        rows = store.encompass_notices(Window())
        assert sorted(r.event_id for r in rows) == ["e-late", "e-ontime", "e-open", "e-override"]
        monday = DEADLINE + timedelta(hours=2)
        late = late_encompass_notices(store, SchoolCalendar(), monday)
        assert [n.event_id for n in late] == ["e-open", "e-late"]
    finally:
        store.close()


class _Monday(datetime):
    @classmethod
    def now(cls, tz: tzinfo | None = None) -> _Monday:
        return cls(2026, 11, 23, 10, 30, tzinfo=tz)


def test_accord_audit_report_has_an_operation_encompass_section_in_text_and_json(
    store: AuditStore, verifier: KeystoreAuditVerifier, notices: EncompassChain, audit_db_url: str,
    run_cli: Run, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    import broker.cli._audit

    index_records(store, verifier, notices.signed())
    monkeypatch.setattr(broker.cli._audit, "datetime", _Monday)
    monkeypatch.setattr(broker.cli._audit, "sign_in", lambda _s, name, **_kw: name)
    monkeypatch.setattr(broker.cli._audit, "_record_lookup", lambda *_a, **_kw: None)
    monkeypatch.setattr(broker.cli._audit, "_index_once", lambda *_a: None)
    argv = ["audit", "report", "--db", audit_db_url, "--reason", "oversight", "--as", "ig.jo"]
    code, out, err = run_cli([*argv, "--format", "json"])
    assert (code, err) == (0, "")
    enc = json.loads(out)["operation_encompass"]
    assert enc["late_by_school"] == {SCHOOL_A: 1, SCHOOL_B: 1}
    assert [(n["school"], n["event_id"], n["acknowledged_at"]) for n in enc["late"]] == [
        (SCHOOL_A, "e-open", None),
        (SCHOOL_B, "e-late", (DEADLINE + timedelta(minutes=45)).isoformat()),
    ]
    assert {n["deadline"] for n in enc["late"]} == {DEADLINE.isoformat()}

    code, out, err = run_cli(argv)
    assert (code, err) == (0, "")
    assert "Operation Encompass: notices never sent, the school having no usable key: 0" in out
    section = out[out.index("Operation Encompass: notices read late") :]
    assert section.splitlines()[0].endswith(": 2")
    assert f"By school: {SCHOOL_A}: 1, {SCHOOL_B}: 1" in section
    assert "not yet" in section
    assert "e-ontime" not in section
    assert "e-hub" not in out


class _Saturday(datetime):
    @classmethod
    def now(cls, tz: tzinfo | None = None) -> _Saturday:
        return cls(2026, 11, 21, 10, 30, tzinfo=tz)


@pytest.mark.parametrize(("today", "late"), [(_Saturday, False), (_Monday, True)])
def test_the_reports_look_up_names_the_child_behind_each_late_notice_it_shows(
    today: type[datetime], late: bool, store: AuditStore, verifier: KeystoreAuditVerifier,
    keys: FileKeyStore, linker: Linker, audit_db_url: str, run_cli: Run,
    monkeypatch: pytest.MonkeyPatch, lookups: list[dict[str, Any]],
) -> None:  # fmt: skip
    """As the console's dashboard does: the record is among the child's earlier look-ups."""
    import broker.cli._audit

    c = EncompassChain(keys, linker)
    c.decided("e-open", SCHOOL_A, encompass_notice_data())  # no override: only the notice
    index_records(store, verifier, c.signed())
    monkeypatch.setattr(broker.cli._audit, "datetime", today)
    argv = ["audit", "report", "--db", audit_db_url, "--reason", "oversight", "--as", "ig.jo"]
    code, out, err = run_cli([*argv, "--format", "json"])
    assert (code, err) == (0, "")
    shown = [n["event_id"] for n in json.loads(out)["operation_encompass"]["late"]]
    assert shown == (["e-open"] if late else [])
    [lookup] = lookups
    assert lookup["subject_keys"] == ((c.child,) if late else ())


def test_the_report_says_so_when_no_notice_is_late(
    store: AuditStore, verifier: KeystoreAuditVerifier, notices: EncompassChain
) -> None:
    from broker.cli._audit_report import report_json, report_text

    index_records(store, verifier, notices.signed())
    rep = governance_report(store, Window(), now=DEADLINE - timedelta(minutes=1))
    text = report_text(rep)
    assert text.endswith(
        "Operation Encompass: notices read late or unread past their deadline: 0\n(none)"
    )
    assert json.loads(report_json(rep))["operation_encompass"] == {
        "unsent_by_school": {}, "unsent": [], "late_by_school": {}, "late": [],
    }  # fmt: skip
