"""A failed verification stays on the dashboard and the chain page until one passes."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi.testclient import TestClient

from broker.audit import AuditRecord
from broker.governance import AuditStore
from tests.unit.audit.conftest import CHILD_NHS
from tests.unit.console.conftest import OFFICER, IndexingSink, sign_in


def _tamper(store: AuditStore, *, undo: bool = False) -> None:
    old, new = ("early_hulp", "early_help") if undo else ("early_help", "early_hulp")
    store._q("UPDATE audit_records SET body = REPLACE(body, ?, ?) "  # type: ignore[attr-defined]  # tampering on purpose
             "WHERE chain = 'worker:w1' AND seq = 2", (old, new))  # fmt: skip


def _state(page: str, chain: str) -> str:
    found = re.search(rf'data-chain="{re.escape(chain)}">.*?<td class="state">(.*?)</td>', page,
                      re.S)  # fmt: skip
    assert found, page
    return found.group(1)


def test_a_failed_verification_stays_broken_on_the_pages_until_one_passes(
    make_client: Callable[..., TestClient], indexed: list[AuditRecord], store: AuditStore
) -> None:
    client = make_client()
    token = sign_in(client)
    _tamper(store)
    assert "Verification failed" in client.post("/chains/verify", data={"csrf": token}).text
    # Later, and in a console started afresh (the result is in the index, not in memory).
    client = make_client()
    sign_in(client)
    assert re.search(r'id="chains-broken">1<', client.get("/").text)
    assert 'id="last-verify-failed"' in client.get("/").text
    page = client.get("/chains").text
    assert _state(page, "worker:w1").startswith("broken at #2 (verification of ")
    assert re.search(
        rf'role="alert" id="last-verification">The index records the last verification as .* '
        rf"by {OFFICER} from the console: FAILED, audit chain &#39;worker:w1&#39; broken at "
        r"seq 2: record content does not match its hash",
        page,
    )
    _tamper(store, undo=True)
    token = sign_in(client)
    again = client.post("/chains/verify", data={"csrf": token}).text
    assert 'id="verify-result">audit log intact' in again
    assert re.search(r'id="chains-broken">0<', client.get("/").text)
    page = client.get("/chains").text
    assert _state(page, "worker:w1") == "intact when indexed"
    assert re.search(
        r'id="last-verification">The index records the last verification as .*: passed, '
        r"\d+ records in \d+ chains\. This is the index's note of it, not evidence",
        page.replace("&#39;", "'"),
    )


def test_the_verification_and_its_result_are_on_record(
    client: TestClient, store: AuditStore, sink: IndexingSink
) -> None:
    token = sign_in(client)
    client.post("/chains/verify", data={"csrf": token})
    _tamper(store)
    client.post("/chains/verify", data={"csrf": token})
    runs = [q.data for q in sink.queries() if q.data["page"] == "chains.verify"]
    assert [r["officer"] for r in runs] == [OFFICER, OFFICER]
    assert runs[0]["detail"]["result"] == "intact"  # type: ignore[index]  # a dict here
    # A pass vouches for the heads it verified (a later verification fails an index holding
    # less); a failure vouches for nothing.
    assert "worker:w1" in runs[0]["verified_heads"]  # type: ignore[operator]  # a dict here
    assert "verified_heads" not in runs[1]
    assert runs[1]["detail"] == {
        "result": "broken", "chain": "worker:w1", "seq": "2",
        "problem": "record content does not match its hash",
    }  # fmt: skip


def test_the_chain_page_says_why_its_two_totals_differ(
    client: TestClient, store: AuditStore
) -> None:
    """The verification reads one snapshot; its own audit record is indexed after it."""
    token = sign_in(client)
    before = store.count()
    page = client.post("/chains/verify", data={"csrf": token}).text
    now = store.count()
    assert now > before
    assert re.search(rf"intact \(sqlite\): {before} records", page)
    assert re.search(
        rf'id="verify-totals">The verification read {before} records; the index holds {now} '
        rf"now.\s*{now - before} more records? (was|were) indexed after it read the index",
        page,
    )


def test_the_childs_log_page_says_when_by_whom_and_the_logs_verification_state(
    client: TestClient, store: AuditStore
) -> None:
    token = sign_in(client)
    form = {"nhs_number": CHILD_NHS, "purpose": "subject_access_request", "csrf": token}
    page = client.post("/subjects", data=form).text
    assert re.search(
        rf'<p id="produced">Produced 2026-11-22 14:00 UTC by {OFFICER}\. Audit log: the '
        r"index records no verification",
        page,
    )
    _tamper(store)
    client.post("/chains/verify", data={"csrf": token})
    page = client.post("/subjects", data=form).text
    assert (
        "Audit log: the index records the last verification as 2026-11-22 14:00:00 UTC by "
        "ig.jo: FAILED: audit chain"
    ) in page.replace("&#39;", "'")
    assert "not yet verified" not in page  # every entry was logged before 14:00
