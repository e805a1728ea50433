"""The IG reports over the index: disclosure log, governance report, override reviews."""

from __future__ import annotations

import csv
import io
import itertools
import json
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.audit import (
    AuditKind,
    AuditRecord,
    ChainWriter,
    KeystoreAuditSigner,
    KeystoreAuditVerifier,
)
from broker.errors import UsageError
from broker.events import is_valid_nhs_number
from broker.governance import (
    AuditStore,
    Window,
    disclosure_log,
    expiring_agreements,
    governance_report,
)
from broker.governance._review import (
    ReviewFinding,
    check_review,
    check_reviewable,
    reference_acceptable,
    review_record,
)
from broker.keys import FileKeyStore
from broker.linkage import Linker
from broker.principals import Principal
from tests.unit.audit.conftest import CHILD_NHS, PARENT_NHS, T0, Run, index_records

POLICIES = Path(__file__).resolve().parents[3] / "policies"  # the project's bundle


def test_the_disclosure_log_lists_every_decision_delivery_and_opening_in_date_order(
    store: AuditStore, indexed: list[AuditRecord], linker: Linker
) -> None:
    log = disclosure_log(store, linker.from_nhs_number(CHILD_NHS))
    got = [(e.kind, e.event_id, e.recipient, e.outcome) for e in log]
    assert got == [
        ("decision", "e1", "coord", "shared"),
        ("decision", "e1", "hub-a", "not_shared"),
        ("delivered", "e1", "coord", None),  # a "shared" decision is no proof it was sent
        ("decision", "e2", "school-1", "shared_override"),
        ("delivered", "e2", "school-1", None),
        ("opened", "e1", "coord", None),
    ]
    assert [e.at for e in log] == sorted(e.at for e in log)
    opened = log[-1]
    assert opened.opened_by == "coord/officer-7"
    assert opened.clauses == ("isa-1/c1",)  # carried over from the decision it opened
    first = log[0]
    assert first.lawful_basis == "public_task; Art 9: safeguarding_children"
    assert first.fields_shared == ("subject.name", "event.type")
    assert first.fields_withheld == ("subject.address",)


def test_an_opening_logged_without_a_time_zone_is_read_as_utc_not_a_broken_log(
    store: AuditStore, indexed: list[AuditRecord], linker: Linker, keys: FileKeyStore,
    verifier: KeystoreAuditVerifier,
) -> None:  # fmt: skip
    """Acknowledgements were taken without a zone before 2026-12-05, and the log keeps them:
    sorting one among the decisions must not fail the child's whole disclosure log."""
    child = linker.from_nhs_number(CHILD_NHS)
    w = ChainWriter("worker:w2", clock=lambda: T0 + timedelta(hours=3))
    naive = (T0 + timedelta(hours=2, minutes=30)).replace(tzinfo=None).isoformat()
    data = {"by": "coord/duty-1", "purpose": "early_help", "at": naive}
    opened = w.append(AuditKind.OPENED, event_id="e1", party="coord", subject_keys=[child],
                      data=data)  # fmt: skip
    signed = [opened, w.checkpoint(KeystoreAuditSigner(keys, Principal.WORKER))]
    index_records(store, verifier, signed, start=100)
    log = disclosure_log(store, child)
    [late] = [e for e in log if e.opened_by == "coord/duty-1"]
    assert late.at == T0 + timedelta(hours=2, minutes=30)
    assert [e.at for e in log] == sorted(e.at for e in log)


def test_an_acknowledgement_of_a_record_not_shared_with_its_sender_is_no_disclosure(
    store: AuditStore, indexed: list[AuditRecord], linker: Linker, keys: FileKeyStore,
    verifier: KeystoreAuditVerifier,
) -> None:  # fmt: skip
    """The worker records every acknowledgement as its sender made it, but a recipient's claim
    to have opened what the broker never shared with it (``e1`` was not shared with hub-a), or
    an event it never decided, must not read as a disclosure in the child's log."""
    child = linker.from_nhs_number(CHILD_NHS)
    w = ChainWriter("worker:w3", clock=lambda: T0 + timedelta(hours=4))
    data = {
        "by": "hub-a/duty-2",
        "purpose": "early_help",
        "at": (T0 + timedelta(hours=4)).isoformat(),
    }
    refused = w.append(AuditKind.OPENED, event_id="e1", party="hub-a", data=data)
    unknown = w.append(AuditKind.OPENED, event_id="e9", party="coord", data=data)
    signed = [refused, unknown, w.checkpoint(KeystoreAuditSigner(keys, Principal.WORKER))]
    index_records(store, verifier, signed, start=200)
    opened = [(e.event_id, e.recipient) for e in disclosure_log(store, child) if e.kind == "opened"]
    assert opened == [("e1", "coord")]


def test_the_parents_log_holds_only_decisions_naming_the_parent(
    store: AuditStore, indexed: list[AuditRecord], linker: Linker
) -> None:
    log = disclosure_log(store, linker.from_nhs_number(PARENT_NHS))
    assert [(e.kind, e.event_id, e.recipient) for e in log] == [
        ("decision", "e1", "coord"),
        ("decision", "e1", "hub-a"),
        ("decision", "e3", "coord"),
        ("delivered", "e3", "coord"),  # e1's delivery named the child alone
        ("opened", "e1", "coord"),  # opened two hours after the event, after e3's decision
    ]


def test_an_unknown_subject_has_an_empty_log(store: AuditStore, indexed: list[AuditRecord]) -> None:
    assert disclosure_log(store, "n:" + "0" * 32) == []


def test_the_governance_report_counts_and_lists_what_ig_needs(
    store: AuditStore, indexed: list[AuditRecord]
) -> None:
    rep = governance_report(store, Window())
    counts = {(d.agreement_id, d.recipient, d.outcome): d.count for d in rep.decisions}
    assert counts == {
        ("isa-1", "coord", "shared"): 2,
        (None, "hub-a", "not_shared"): 1,
        ("isa-1", "school-1", "shared_override"): 1,
    }
    assert [(p.event_id, p.recipient) for p in rep.pending_overrides] == [("e2", "school-1")]
    assert rep.quarantine == (("invalid-event", 1),)
    assert {(r.recipient, r.delivered, r.unopened) for r in rep.deliveries} == {
        ("coord", 2, 1),
        ("school-1", 1, 1),
    }
    assert [r.recipient for r in rep.never_opened] == ["school-1"]
    assert rep.expiring is None


def test_the_report_window_excludes_records_outside_it(
    store: AuditStore, indexed: list[AuditRecord]
) -> None:
    rep = governance_report(store, Window(since=T0 + timedelta(minutes=10)))
    assert {d.recipient for d in rep.decisions} == {"coord"}  # only e3's decision is that late
    assert rep.quarantine == (("invalid-event", 1),)
    empty = governance_report(store, Window(until=T0))
    assert empty.decisions == ()


def test_the_index_lists_quarantined_records_in_a_window_for_accord_audit_quarantine(
    store: AuditStore, indexed: list[AuditRecord]
) -> None:
    [rec] = store.quarantined(Window())
    assert rec.kind is AuditKind.QUARANTINED
    assert rec.data["reason"] == "invalid-event"
    assert store.quarantined(Window(since=T0 + timedelta(minutes=10))) == [rec]
    assert store.quarantined(Window(until=T0)) == []


def test_agreements_expiring_within_60_days_come_from_the_bundle() -> None:
    from broker.policy import load_bundle

    policy = load_bundle(POLICIES)
    # Four agreements of the project's bundle end on 31 March 2028, one of them suspended;
    # the Wolverhampton MASH agreement ended three months before, and is not listed.
    today = date(2028, 3, 31) - timedelta(days=60)
    expiring = expiring_agreements(policy, today)
    assert [(e.agreement_id, e.status, e.days_left) for e in expiring] == [
        ("operation-encompass", "approved", 60),
        ("safe-haven-referrals", "suspended", 60),
        ("sandwell-early-help", "approved", 60),
        ("sandwell-referrals", "approved", 60),
    ]
    assert all(e.valid_until == date(2028, 3, 31) for e in expiring)
    assert expiring_agreements(policy, today - timedelta(days=1)) == []
    # A draft is not in force, so its end is never reported (the GP pilot's is 2028-12-31).
    [draft] = [a for a in policy.bundle.agreements if a.status == "draft"]
    assert expiring_agreements(policy, draft.valid_until - timedelta(days=60)) == []


def test_reviewing_an_override_is_an_audit_record_and_clears_the_queue(
    store: AuditStore, indexed: list[AuditRecord], keys: FileKeyStore,
    verifier: KeystoreAuditVerifier,
) -> None:  # fmt: skip
    decision = check_reviewable(store, "e2", "school-1")
    writer = ChainWriter("console:test", clock=lambda: T0 + timedelta(days=1))
    records = [
        review_record(writer, decision, reviewed_by="ig-jo", finding=ReviewFinding.JUSTIFIED,
                      reference="IG-2026-114")
    ]  # fmt: skip
    records.append(writer.checkpoint(KeystoreAuditSigner(keys, Principal.CONSOLE)))
    assert [r.kind.value for r in records] == ["override_reviewed", "checkpoint"]
    assert store.review_of("e2", "school-1") is None  # nothing until the log holds it
    summary = index_records(store, verifier, records, start=100)
    assert summary.breaks == []
    review = store.review_of("e2", "school-1")
    assert review is not None
    assert (review.reviewed_by, review.finding, review.reference, review.note, review.chain) == (
        "ig-jo", "justified", "IG-2026-114", "", "console:test"
    )  # fmt: skip
    assert governance_report(store, Window()).pending_overrides == ()
    with pytest.raises(UsageError, match="already reviewed"):
        check_reviewable(store, "e2", "school-1")


@pytest.mark.parametrize(("event", "party"), [("e1", "coord"), ("e9", "coord")])
def test_only_a_safeguarding_override_can_be_reviewed(
    store: AuditStore, indexed: list[AuditRecord], event: str, party: str
) -> None:
    """e1 to the co-ordinating team is a plain share; e9 is no event at all."""
    with pytest.raises(UsageError, match="no safeguarding override"):
        check_reviewable(store, event, party)


def test_a_refused_review_does_not_repeat_the_event_id_or_recipient_typed(
    store: AuditStore, indexed: list[AuditRecord]
) -> None:
    """A mistyped id may be an NHS number and a recipient a name: neither is echoed."""
    with pytest.raises(UsageError) as missing:
        check_reviewable(store, "999 701 7463", "Jane Smith")
    assert "999 701 7463" not in str(missing.value)
    assert "Jane Smith" not in str(missing.value)


@pytest.mark.parametrize(
    ("by", "finding", "reference", "match"),
    [
        (" ", "justified", None, "--as"),
        ("ig", "", None, "--finding"),
        ("ig", "probably fine", None, "--finding"),
        ("ig", "justified", "", "--reference"),
        ("ig", "justified", "Jane Smith, DA incident", "--reference"),  # a note, not a reference
        ("ig", "justified", "x" * 41, "--reference"),
        ("ig", "justified", "943-476-5919", "--reference"),  # an NHS number as it is written
        ("ig", "justified", "ref/9434765919", "--reference"),
        ("ig", "justified", "tel-07700900123", "--reference"),
        ("ig", "justified", "07700-900123", "--reference"),  # telephone numbers, as written
        ("ig", "justified", "07700.900123", "--reference"),
        ("ig", "justified", "020-7946-0000", "--reference"),
        ("ig", "justified", "IG/94/34/76/59/19", "--reference"),  # an NHS number, regrouped
        ("ig", "justified", "IG/1/943/476/5919", "--reference"),  # inside a longer reference
        ("ig", "justified", "IG-2026000123", "--reference"),  # ten digits in a row
        ("ig", "justified", "44-7700-900123", "--reference"),  # a telephone number from abroad
        ("ig", "justified", "7700-900-123", "--reference"),  # a mobile without its 0
        ("ig", "justified", "999-123-4567", "--reference"),  # NHS form, even failing the check
        ("ig", "justified", "943--476--5919", "--reference"),  # separators doubled
        ("ig", "justified", "020-/7946-/0000", "--reference"),
        ("ig", "justified", "0800-123-456", "--reference"),  # ten digits, dialled
        ("ig", "justified", "20-7946-0000", "--reference"),  # London, printed after +44
        ("ig", "justified", "IG/20.3018.0000", "--reference"),
        ("ig", "justified", "Jane-Smith", "--reference"),  # a name: no case number in it
        ("ig", "justified", "smith", "--reference"),
        ("ig", "justified", "IG-case", "--reference"),
    ],
)
def test_a_review_is_a_finding_and_at_most_a_reference_never_free_text(
    by: str, finding: str, reference: str | None, match: str
) -> None:
    with pytest.raises(UsageError, match=match):
        check_review(reviewed_by=by, finding=finding, reference=reference)


@pytest.mark.parametrize("reference", ["Jane-Smith", "smith", "Ruby.Holland", "IG-case"])
def test_a_reference_with_no_digit_is_refused_saying_a_reference_carries_its_case_number(
    reference: str,
) -> None:
    """A case or ticket reference always has a number; one without is a name or a word."""
    assert not reference_acceptable(reference)
    with pytest.raises(UsageError, match="--reference") as refused:
        check_review(reviewed_by="ig", finding="justified", reference=reference)
    message = str(refused.value)
    assert "carries its case number, e.g. IG-2026-0142" in message
    assert reference not in message
    assert reference_acceptable("IG-2026-0142")


def _grouped(draw: st.DrawFn, digits: str) -> str:
    cuts = sorted(draw(st.sets(st.integers(1, len(digits) - 1), max_size=len(digits) - 1)))
    bounds = [0, *cuts, len(digits)]
    groups = [digits[a:b] for a, b in itertools.pairwise(bounds)]
    seps = draw(
        st.lists(
            st.text("-./:_", min_size=1, max_size=2),
            min_size=len(groups) - 1,
            max_size=len(groups) - 1,
        )
    )
    prefix = draw(st.sampled_from(["", "IG-", "ref/", "IG/7/"]))
    joined = "".join(g + s for g, s in zip(groups[:-1], seps, strict=True)) + groups[-1]
    return prefix + joined


@st.composite
def _nhs_number_grouped(draw: st.DrawFn) -> str:
    """A number that passes the check digit where NHS and CHI numbers are issued, any grouping."""
    first = draw(st.sampled_from("3456789"))
    nine = first + draw(st.text("0123456789", min_size=8, max_size=8))
    for last in "0123456789":
        if is_valid_nhs_number(nine + last):
            return _grouped(draw, nine + last)
    return _grouped(draw, "9434765919")  # nine digits with no valid check digit


@st.composite
def _telephone_grouped(draw: st.DrawFn) -> str:
    """A UK number as dialled: eleven digits from 0, or ten from 01 or 08."""
    ten = draw(st.sampled_from("18")) + draw(st.text("0123456789", min_size=8, max_size=8))
    eleven = draw(st.text("0123456789", min_size=10, max_size=10))
    return _grouped(draw, "0" + draw(st.sampled_from([ten, eleven])))


@st.composite
def _london_after_44(draw: st.DrawFn) -> str:
    """A London number as printed after +44, its 0 dropped: 20, then 3, 7 or 8 and seven more."""
    local = draw(st.sampled_from("378")) + draw(st.text("0123456789", min_size=7, max_size=7))
    sep = draw(st.sampled_from(["-", ".", "/", "_", "--"]))
    prefix = draw(st.sampled_from(["", "IG-", "tel/"]))
    return prefix + sep.join(["20", local[:4], local[4:]])


@settings(max_examples=300)
@given(reference=st.one_of(_nhs_number_grouped(), _telephone_grouped(), _london_after_44()))
def test_an_nhs_or_telephone_number_is_refused_however_it_is_grouped(reference: str) -> None:
    with pytest.raises(UsageError, match="--reference"):
        check_review(reviewed_by="ig", finding="justified", reference=reference)


def test_a_scottish_chi_number_regrouped_is_refused_and_a_year_and_sequence_taken() -> None:
    """CHI numbers start with a date of birth; a year-and-sequence case number has no 26th month."""
    chi = next(f"150690{n:04d}" for n in range(10_000) if is_valid_nhs_number(f"150690{n:04d}"))
    with pytest.raises(UsageError, match="--reference"):
        check_review(reviewed_by="ig", finding="justified", reference=f"IG-{chi[:4]}-{chi[4:]}")
    assert is_valid_nhs_number("2026000123")  # why the old rule refused it
    assert check_review(reviewed_by="ig", finding="justified", reference="IG-2026-000123")


@pytest.mark.parametrize(
    ("finding", "reference", "found"),
    [
        ("justified", None, ReviewFinding.JUSTIFIED),
        ("not-justified", "IG/2026/114", ReviewFinding.NOT_JUSTIFIED),
        ("not_justified", "LCS-1234567", ReviewFinding.NOT_JUSTIFIED),
        ("justified", "IG-2026-C000123", ReviewFinding.JUSTIFIED),  # a letter breaks the run
        ("justified", "SAR-2026-11-21", ReviewFinding.JUSTIFIED),
        ("justified", "IG-2026-000123", ReviewFinding.JUSTIFIED),  # as many digits as an NHS number
        ("justified", "IG-2026-000124", ReviewFinding.JUSTIFIED),
        ("justified", "INC-2026-0001234", ReviewFinding.JUSTIFIED),
        ("justified", "IG/07/2026/0042", ReviewFinding.JUSTIFIED),  # a month, a year, a number
        ("justified", "MASH/05/12/2026/17", ReviewFinding.JUSTIFIED),
        ("justified", "REQ-000123-2026", ReviewFinding.JUSTIFIED),
        ("justified", "IG-2026-000123-0042", ReviewFinding.JUSTIFIED),
        ("justified", "IG-1999-000123", ReviewFinding.JUSTIFIED),  # not an 01 area's number
        ("justified", "REF/1201/000456", ReviewFinding.JUSTIFIED),
        ("justified", "CASE-10001-00042", ReviewFinding.JUSTIFIED),
        ("justified", "T-1234-567-890", ReviewFinding.JUSTIFIED),
        ("justified", "24-3001-0001", ReviewFinding.JUSTIFIED),  # 2-4-4, but not London's
        ("justified", "20-2026-0042", ReviewFinding.JUSTIFIED),  # nor a London local number
    ],
)
def test_a_finding_and_a_case_reference_are_taken(
    finding: str, reference: str | None, found: ReviewFinding
) -> None:
    assert check_review(reviewed_by="ig", finding=finding, reference=reference) is found


# -- the CLI -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["table", "csv", "json", "html"])
def test_accord_audit_subject_prints_the_log_in_each_format_without_the_nhs_number(
    fmt: str, store: AuditStore, indexed: list[AuditRecord], audit_db_url: str, run_cli: Run,
    lookups: list[dict[str, Any]], linker: Linker,
) -> None:  # fmt: skip
    code, out, err = run_cli(
        ["audit", "subject", "--nhs-number", "999 701 7463", "--db", audit_db_url, "--format", fmt,
         "--reason", "complaint", "--as", "ig.jo"]
    )  # fmt: skip
    assert (code, err) == (0, "")
    [lookup] = lookups
    assert lookup["officer"] == "ig.jo"
    assert (lookup["page"], lookup["detail"]) == ("cli.subject", {"purpose": "complaint"})
    assert lookup["subject_keys"] == (linker.from_nhs_number(CHILD_NHS),)
    assert CHILD_NHS not in out.replace(" ", "")
    assert "school-1" in out
    assert "coord/officer-7" in out
    if fmt == "json":
        assert [e["kind"] for e in json.loads(out)] == [
            "decision", "decision", "delivered", "decision", "delivered", "opened"
        ]  # fmt: skip
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out)))
        assert [r["recipient"] for r in rows] == [
            "coord", "hub-a", "coord", "school-1", "school-1", "coord"
        ]  # fmt: skip
    elif fmt == "html":
        assert out.startswith("<!doctype html>")
        assert out.count("<tr>") == 7


class _ReportDay(datetime):
    """``datetime`` whose ``now`` is 60 days before three project agreements end."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> _ReportDay:
        return cls(2028, 1, 31, 9, 0, tzinfo=tz)


def test_accord_audit_report_prints_every_section(
    store: AuditStore, indexed: list[AuditRecord], audit_db_url: str, run_cli: Run,
    monkeypatch: pytest.MonkeyPatch, lookups: list[dict[str, Any]],
) -> None:  # fmt: skip
    import broker.cli._audit

    monkeypatch.setattr(broker.cli._audit, "datetime", _ReportDay)  # today, for the expiries
    code, out, err = run_cli(
        ["audit", "report", "--db", audit_db_url, "--policies", str(POLICIES), "--format", "json",
         "--reason", "oversight", "--as", "ig.jo"]
    )  # fmt: skip
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert data["never_opened"] == ["school-1"]
    assert [p["event_id"] for p in data["pending_overrides"]] == ["e2"]
    assert [(e["agreement_id"], e["days_left"]) for e in data["expiring_agreements"]] == [
        ("operation-encompass", 60),
        ("safe-haven-referrals", 60),
        ("sandwell-early-help", 60),
        ("sandwell-referrals", 60),
    ]
    code, out, _ = run_cli(["audit", "report", "--db", audit_db_url, "--since", "2026-11-22",
                            "--until", "2026-11-22", "--reason", "audit_sample",
                            "--as", "ig.jo"])  # fmt: skip
    assert code == 0
    assert [(c["page"], c["detail"]) for c in lookups] == [
        ("cli.report", {"purpose": "oversight"}),
        ("cli.report", {"purpose": "audit_sample", "since": "2026-11-22", "until": "2026-11-22"}),
    ]
    assert "Safeguarding overrides awaiting review: 1" in out
    assert "invalid-event" in out


def test_the_report_window_is_whole_days_in_utc() -> None:
    from broker.cli._audit import parse_when

    assert parse_when("2026-11-22", "--until", end=True) == datetime(2026, 11, 23, tzinfo=UTC)
    assert parse_when("2026-11-22", "--since") == datetime(2026, 11, 22, tzinfo=UTC)
    assert parse_when("2026-11-22T10:00:00", "--since") == datetime(2026, 11, 22, 10, tzinfo=UTC)


@pytest.mark.parametrize("value", ["20261130", "2026-11-30", "2026-W48-1"])
def test_a_date_in_any_iso_form_is_a_whole_day_up_to_and_including_it(value: str) -> None:
    from broker.cli._audit import parse_when

    day = date.fromisoformat(value)
    assert parse_when(value, "--until", end=True) == datetime.combine(
        day + timedelta(days=1), time(), UTC
    )
    assert parse_when(value, "--since") == datetime.combine(day, time(), UTC)


@pytest.mark.parametrize(
    "reference",
    ["Christine.Bailey-1", "Ruby.Holland2", "smith01", "jane.smith-2026", "tom.lee-1", "Li.Wu-1",
     "ChristineBailey1", "jane_smith2026", "Amy1"],
)  # fmt: skip
def test_a_name_with_a_number_added_is_refused_as_a_reference(reference: str) -> None:
    """An IG officer typed a child's name with a digit (Christine.Bailey-1) and it went into
    the append-only log: two words joined, or a word with one or two digits, is a name."""
    assert not reference_acceptable(reference)


@pytest.mark.parametrize(
    "reference",
    ["IG-7", "IG-2026-0142", "INC0012345", "REF-MARK-77", "ref-0", "SAR/26/3", "BVSC/9",
     "Datix-12345", "Case-2026-14", "Ref-2026-001", "Ulysses-2026/17", "dsar-12", "ticket-42",
     "SAFEGUARD-12", "INFOGOV-12", "3f2a9c1e-8b7d-4c6e-9fab-cdef01234567"],
)  # fmt: skip
def test_a_case_systems_references_are_still_taken(reference: str) -> None:
    """A prefix then its number is a case system's shape (review r45b: Datix, Jira keys and
    Case-/Ref- prefixes were refused by the first rule)."""
    assert reference_acceptable(reference)
