"""Why decisions were not shared, on the dashboard (by reason, with each reason's meaning)
and the Agreements page (per agreement, and for none); agreements expired while still
approved, on the dashboard; what the chain tile counts. On SQLite and PostgreSQL: the
counts are the report's own (``decision_counts``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from broker.audit import (
    AuditKind,
    AuditRecord,
    ChainWriter,
    KeystoreAuditSigner,
    KeystoreAuditVerifier,
)
from broker.governance import REASON_MEANINGS, AuditStore, open_store
from broker.keys import FileKeyStore
from broker.policy import Policy, load_bundle
from broker.principals import Principal
from tests.unit.audit.conftest import T0, decision, index_records
from tests.unit.console.conftest import sign_in

# Approved in the repository's bundle, its last day 2026-06-30: expired at T0 (2026-11-22).
EXPIRED = "wolverhampton-homes-pilot"
BASIS = {"article6": "public_task", "article9": None, "article10": None}


@pytest.fixture
def store(audit_db_url: str, audit_home: Path) -> Iterator[AuditStore]:
    """The console's index, on each dialect (the console conftest's is SQLite only)."""
    s = open_store(audit_db_url, home=audit_home)
    yield s
    s.close()


def _ground(agreement: str) -> dict[str, Any]:
    return {"agreement_id": agreement, "agreement_version": "1", "clause_id": "c1",
            "purpose": "early_help", "lawful_basis": BASIS, "consent": "required"}  # fmt: skip


def _refused(reason: str, *agreements: str) -> dict[str, Any]:
    return decision(
        "not_shared", reason=reason, agreement_id=agreements[0] if agreements else None,
        clause_ids=["c1"] if agreements else [],
        **({"grounds": [_ground(a) for a in agreements]} if agreements else {}),
    )  # fmt: skip


@pytest.fixture
def refusals_indexed(
    store: AuditStore, verifier: KeystoreAuditVerifier, keys: FileKeyStore
) -> list[AuditRecord]:
    """Four decisions not to share: two as agreement-inactive under the expired agreement,
    one as condition-false under two agreements at once, one citing none."""
    tick = iter(range(100))
    w = ChainWriter("worker:w5", clock=lambda: T0 + timedelta(minutes=next(tick)))
    decided = [
        ("e10", "wolves-homes", _refused("agreement-inactive", EXPIRED)),
        ("e11", "wolves-homes", _refused("agreement-inactive", EXPIRED)),
        ("e12", "sandwell-coord", _refused("condition-false", "sandwell-early-help",
                                           "wolverhampton-mash")),
        ("e13", "hub-a", _refused("no-agreement")),
    ]  # fmt: skip
    out = [w.append(AuditKind.DECIDED, event_id=e, party=p, data=d) for e, p, d in decided]
    out.append(w.checkpoint(KeystoreAuditSigner(keys, Principal.WORKER)))
    assert index_records(store, verifier, out).breaks == []
    return out


@pytest.fixture
def policy() -> Policy:
    return load_bundle(Path(__file__).parents[3] / "policies")


@pytest.fixture
def signed_in(
    make_client: Callable[..., TestClient], refusals_indexed: list[AuditRecord], policy: Policy
) -> TestClient:
    client = make_client(policy=policy)
    sign_in(client)
    return client


def _row(page: str, table: str, attr: str, value: str) -> str:
    found = re.search(rf'<table id="{table}">.*?</table>', page, re.S)
    assert found, table
    row = re.search(rf'<tr {attr}="{re.escape(value)}".*?</tr>', found.group(0), re.S)
    assert row, value
    return row.group(0)


def test_the_dashboard_breaks_not_shared_down_by_reason_with_its_meaning(
    signed_in: TestClient,
) -> None:
    page = signed_in.get("/").text
    inactive = _row(page, "not-shared-reasons", "data-reason", "agreement-inactive")
    assert '<td class="count">2</td>' in inactive
    assert REASON_MEANINGS["agreement-inactive"] in inactive
    assert f"{EXPIRED}: 2" in inactive
    # One decision under two agreements counts under each, as the report counts it.
    assert '<td class="count">2</td>' in _row(page, "not-shared-reasons", "data-reason",
                                              "condition-false")  # fmt: skip
    assert "no agreement: 1" in _row(page, "not-shared-reasons", "data-reason", "no-agreement")
    said = " ".join(re.sub(r"<[^>]+>", "", page).split())
    assert "4 decisions of 4 in these 14 days were not shared" in said
    assert "so the counts add up to 5" in said


def test_the_agreements_page_has_a_not_shared_column_and_a_row_for_no_agreement(
    signed_in: TestClient,
) -> None:
    page = signed_in.get("/agreements").text
    # All time: the dashboard counts its 14 days, and links here for them per agreement.
    assert "<th>Not shared (all time)</th>" in page
    cells = re.findall(r'<td class="not-shared">(.*?)</td>', page, re.S)
    assert "2<br><small>agreement-inactive: 2</small>" in cells
    assert "1<br><small>condition-false: 1</small>" in cells  # under each of its two
    no_agreement = re.search(r'<tr class="no-agreement">.*?</tr>', page, re.S)
    assert no_agreement
    assert "1<br><small>no-agreement: 1</small>" in no_agreement.group(0)
    # Not "refuses every share": in force is decided before the clause's conditions, so the
    # count includes decisions to recipients those would have excluded anyway.
    assert "refuses every share" not in page
    assert (
        "still approved, not in force: its decisions are refused because the agreement is not "
        "in force (agreement-inactive), including some to recipients its conditions would "
        "exclude anyway"
    ) in page


def test_the_dashboard_names_agreements_expired_while_still_approved(
    signed_in: TestClient, policy: Policy
) -> None:
    page = signed_in.get("/").text
    assert re.search(r'id="agreements-expired">1</span> agreement expired but still approved',
                     page)  # fmt: skip
    listed = re.search(r'<ul id="expired-agreements">(.*?)</ul>', page, re.S)
    assert listed
    assert EXPIRED in listed.group(1)
    assert (
        "ended 2026-06-30; 2 decisions refused because the agreement is not in force in these "
        "14 days (including any to recipients its conditions would exclude anyway)"
    ) in listed.group(1)
    said = " ".join(re.sub(r"<[^>]+>", "", page).split())
    assert "each decision they could have allowed" not in said
    assert "per agreement, over the whole index (all time), on the Agreements page" in said
    # No agreement still in force is listed.
    others = [a.id for a in policy.bundle.agreements if a.id != EXPIRED]
    assert not [a for a in others if a in listed.group(1)]


def test_the_dashboard_says_what_an_audit_chain_is_and_links_the_chain_page(
    signed_in: TestClient,
) -> None:
    said = re.search(r'<p id="chains-explained">(.*?)</p>', signed_in.get("/").text, re.S)
    assert said
    assert "one per worker input partition" in said.group(1)
    assert "Broken means verifying it failed" in said.group(1)
    assert 'href="/chains"' in said.group(1)
