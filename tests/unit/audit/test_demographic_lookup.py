"""A child recorded without an NHS number: found by name, date of birth and postcode.

The worker files such a child's decisions under the demographic key with the postcode when
the event gives one, and without it when it does not; a name with an accent also had an older
key. A look-up searches each of those forms, and only those.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta
from typing import Any

import pytest

from broker.audit import AuditKind, AuditRecord, ChainWriter, KeystoreAuditSigner
from broker.audit import KeystoreAuditVerifier as Verifier
from broker.errors import UsageError
from broker.events import Subject
from broker.governance import AuditStore, disclosure_log, subject_search
from broker.keys import FileKeyStore
from broker.linkage import Linker
from broker.principals import Principal
from tests.unit.audit.conftest import T0, Run, decision, index_records

NOW = T0 + timedelta(hours=6)
# What the event said, and what an officer types: the same child, the accents left off.
RECORDED = {"given_name": "Siân", "family_name": "O'Néill", "dob": "2016-03-04"}
TYPED = {"given_name": "Sian", "family_name": "ONeill", "dob": "2016-03-04"}
POSTCODE = "DY4 7AA"
PERSONAL = ("Siân", "Sian", "O'Néill", "ONeill", "Neill", "2016-03-04", "DY4", "7AA", "dy4")


def worker_key(linker: Linker, **names: str) -> str:
    """The subject key the worker files a decision under, from the event's subject."""
    subject = Subject.model_validate({"role": "child", **names}, context={"now": NOW})
    return linker.lookup_keys(subject)[0]


def legacy_key(linker: Linker, **names: str) -> str:
    """The key an accented name had before names dropped their accents."""
    subject = Subject.model_validate({"role": "child", **names}, context={"now": NOW})
    key = linker.legacy_key(subject)
    assert key is not None
    return key


def demographic_chain(linker: Linker, keys: FileKeyStore) -> list[AuditRecord]:
    """e10 decided with the postcode, e11 without, e12 under the older key of the accented
    name, e13 about another child of the same name (born a day later); coord opens e10."""
    tick = iter(range(1000))
    w = ChainWriter("worker:w5", clock=lambda: T0 + timedelta(minutes=next(tick)))
    filed = [
        ("e10", "coord", "shared", worker_key(linker, **RECORDED, postcode=POSTCODE)),
        ("e11", "hub-a", "not_shared", worker_key(linker, **RECORDED)),
        ("e12", "coord", "shared", legacy_key(linker, **RECORDED)),
        ("e13", "school-1", "shared", worker_key(linker, **dict(RECORDED, dob="2016-03-05"),
                                                 postcode=POSTCODE)),
    ]  # fmt: skip
    out = [
        w.append(AuditKind.DECIDED, event_id=event, party=party, subject_keys=[key],
                 data=decision(outcome))
        for event, party, outcome, key in filed
    ]  # fmt: skip
    opened = {
        "by": "coord/a.khan",
        "purpose": "early_help",
        "at": (NOW - timedelta(hours=1)).isoformat(),
    }
    out.append(w.append(AuditKind.OPENED, event_id="e10", party="coord", data=opened))
    return [*out, w.checkpoint(KeystoreAuditSigner(keys, Principal.WORKER))]


@pytest.fixture
def filed(store: AuditStore, verifier: Verifier, linker: Linker, keys: FileKeyStore) -> None:
    assert index_records(store, verifier, demographic_chain(linker, keys)).breaks == []


def events_found(store: AuditStore, keys: FileKeyStore, **typed: str) -> list[tuple[str, str]]:
    search = subject_search(keys.linkage_key(), now=NOW, **typed)
    return [(e.kind, e.event_id) for e in disclosure_log(store, *search.keys)]


@pytest.mark.usefixtures("filed")
def test_with_the_postcode_a_child_is_found_under_every_key_they_were_filed_by(
    store: AuditStore, keys: FileKeyStore
) -> None:
    """Typed without accents: the decision with the postcode, the one without, the opening."""
    found = events_found(store, keys, **TYPED, postcode="dy47aa")
    assert found == [("decision", "e10"), ("decision", "e11"), ("opened", "e10")]


@pytest.mark.usefixtures("filed")
def test_each_line_says_what_it_was_matched_on(store: AuditStore, keys: FileKeyStore) -> None:
    """With the postcode, a line found under the key without one (or the older spelling's)
    may be another child of the same name and birth date: the officer must see which."""
    search = subject_search(keys.linkage_key(), now=NOW, **RECORDED, postcode=POSTCODE)
    log = disclosure_log(store, *search.keys, matched_on=search.matched_on)
    assert [(e.kind, e.event_id, e.matched_on) for e in log] == [
        ("decision", "e10", "name, date of birth, postcode"),
        ("decision", "e11", "name and date of birth only"),
        ("decision", "e12", "older spelling of the name, date of birth"),
        ("opened", "e10", "name, date of birth, postcode"),
    ]
    assert all(e.as_dict()["matched_on"] == e.matched_on for e in log)
    plain = subject_search(keys.linkage_key(), now=NOW, **TYPED)
    found = disclosure_log(store, *plain.keys, matched_on=plain.matched_on)
    assert [e.matched_on for e in found] == ["name and date of birth only"]


@pytest.mark.usefixtures("filed")
def test_without_the_postcode_only_decisions_made_without_one_are_found(
    store: AuditStore, keys: FileKeyStore
) -> None:
    assert events_found(store, keys, **TYPED) == [("decision", "e11")]


@pytest.mark.usefixtures("filed")
def test_a_name_typed_with_its_accents_finds_its_older_key_too(
    store: AuditStore, keys: FileKeyStore
) -> None:
    found = events_found(store, keys, **RECORDED, postcode=POSTCODE)
    assert [e for _, e in found] == ["e10", "e11", "e12", "e10"]


@pytest.mark.usefixtures("filed")
def test_a_different_child_finds_nothing(store: AuditStore, keys: FileKeyStore) -> None:
    for other in ({**TYPED, "dob": "2016-03-06"}, {**TYPED, "given_name": "Sean"}):
        assert events_found(store, keys, **other, postcode=POSTCODE) == []
    assert events_found(store, keys, **TYPED, postcode="B69 2AA") == [("decision", "e11")]


def test_the_search_says_which_forms_it_searched_naming_no_one(keys: FileKeyStore) -> None:
    key = keys.linkage_key()
    plain = subject_search(key, now=NOW, **TYPED)
    assert plain.summary() == (
        "searched by name and date of birth; with postcode: no (records decided with a "
        "postcode are found only with it); older spelling's key: no; records filed under an "
        "NHS number are found only by that number, so nothing found here does not mean "
        "nothing is held: if the child has one, ask the requester for it and look up by it"
    )
    both = subject_search(key, now=NOW, **RECORDED, postcode=POSTCODE)
    assert len(both.keys) == 3
    assert "with postcode: yes; older spelling's key: yes" in (both.summary() or "")
    assert both.detail() == {"searched_by": "demographics", "with_postcode": "yes"}
    for text in (str(plain), str(both)):
        assert not any(p in text for p in PERSONAL)


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ({"nhs_number": "9997017463", **TYPED}, "not both"),
        ({"nhs_number": "9997017463", "postcode": POSTCODE},
         "--nhs-number given with --postcode: give --nhs-number, or"),
        ({**TYPED, "postcode": "DY4 7AA DY4 7AA"}, "--postcode: not the shape of a UK postcode"),
        ({}, "give --nhs-number, or --given-name"),
        ({"given_name": "Sian", "dob": "2016-03-04"}, "also needs --family-name"),
        ({"postcode": POSTCODE}, "--given-name and --family-name and --dob"),
        ({**TYPED, "dob": "2016-02-30"}, "--dob: not a real date"),
        ({**TYPED, "dob": "04/03/2016"}, "--dob: must be an ISO 8601 date"),
        ({**TYPED, "dob": "20160304"}, "--dob: must be an ISO 8601 date"),
        ({**TYPED, "dob": "2036-03-04"}, "--dob: is in the future"),
        ({**TYPED, "given_name": "-"}, "--given-name: needs at least one letter"),
        ({**TYPED, "family_name": "  "}, "--family-name: needs at least one letter"),
        ({**TYPED, "postcode": "DY4"}, "--postcode: not the shape of a UK postcode"),
    ],
)  # fmt: skip
def test_a_search_that_names_no_one_child_is_refused_without_echoing_it(
    keys: FileKeyStore, typed: dict[str, str], message: str
) -> None:
    with pytest.raises(UsageError) as refused:
        subject_search(keys.linkage_key(), now=NOW, **typed)
    assert message in str(refused.value)
    assert not any(p in str(refused.value) for p in (*PERSONAL, "04/03", "2016-02-30", "2036"))


# -- the CLI -------------------------------------------------------------------------------


def by_name(audit_db_url: str, fmt: str, *extra: str) -> list[str]:
    return ["audit", "subject", "--given-name", "Sian", "--family-name", "ONeill",
            "--dob", "2016-03-04", *extra, "--db", audit_db_url, "--format", fmt,
            "--reason", "subject_access_request", "--as", "ig.jo"]  # fmt: skip


@pytest.mark.usefixtures("filed")
@pytest.mark.parametrize("fmt", ["table", "csv", "json", "html"])
def test_accord_audit_subject_finds_a_child_by_name_and_records_only_subject_keys(
    fmt: str, audit_db_url: str, run_cli: Run, lookups: list[dict[str, Any]], linker: Linker
) -> None:
    code, out, err = run_cli(by_name(audit_db_url, fmt, "--postcode", "dy4 7aa"))
    assert code == 0, err
    [lookup] = lookups
    assert lookup["page"] == "cli.subject"
    assert lookup["subject_keys"] == (
        worker_key(linker, **RECORDED, postcode=POSTCODE), worker_key(linker, **RECORDED),
    )  # fmt: skip
    assert lookup["detail"] == {"purpose": "subject_access_request",
                                "searched_by": "demographics", "with_postcode": "yes"}  # fmt: skip
    assert not any(p in repr(lookup) for p in PERSONAL)
    assert not any(p in out + err for p in PERSONAL)
    # As a word: the SAR header's subject keys are hex, and "ee1313" is no event id.
    assert not re.search(r"\be13\b", out)
    if fmt == "json":  # the same list as by NHS number; what was searched goes to stderr
        assert [(e["kind"], e["event_id"]) for e in json.loads(out)] == [
            ("decision", "e10"), ("decision", "e11"), ("opened", "e10")]  # fmt: skip
        assert "with postcode: yes" in err
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out)))
        assert [r["event_id"] for r in rows] == ["e10", "e11", "e10"]
        assert "with postcode: yes" in err
    else:
        assert "with postcode: yes" in out
        assert err == ""


@pytest.mark.usefixtures("filed")
def test_accord_audit_subject_without_the_postcode_says_what_it_could_not_find(
    audit_db_url: str, run_cli: Run, lookups: list[dict[str, Any]]
) -> None:
    code, out, _ = run_cli(by_name(audit_db_url, "table"))
    assert code == 0
    said = " ".join(out.split())  # a table wraps its heading to the width it is printed in
    assert "with postcode: no (records decided with a postcode are found only with it)" in said
    assert "e11" in out
    assert not re.search(r"\be10\b", out)
    assert lookups[0]["detail"]["with_postcode"] == "no"


@pytest.mark.usefixtures("indexed")
@pytest.mark.parametrize("fmt", ["table", "html", "csv"])
def test_accord_audit_subject_by_name_for_a_child_filed_under_an_nhs_number_says_to_ask_for_it(
    fmt: str, audit_db_url: str, run_cli: Run, lookups: list[dict[str, Any]]
) -> None:
    """Nothing found by name is never shown as nothing recorded: an NHS number finds what a
    name cannot, and the answer says so (on stderr beside csv and json)."""
    code, out, err = run_cli(by_name(audit_db_url, fmt, "--postcode", POSTCODE))
    assert code == 0, err
    said = " ".join((out + err).split())
    assert "(nothing recorded)" not in said
    assert "records filed under an NHS number are found only by that number" in said
    if fmt == "table":
        assert "a child with an NHS number is found only by it, so ask the requester" in said
