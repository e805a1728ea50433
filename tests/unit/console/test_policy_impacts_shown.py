"""The agreements page lists runs of ``accord policy impact``: who ran each, when, the bundle
in force and the one proposed, and the counts (IG lead's walk-through 3: the audit chain page
showed only their chain names)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from broker.audit import AuditRecord, KeystoreAuditVerifier
from broker.keys import FileKeyStore
from broker.pipeline import Impact
from broker.policy import load_bundle
from tests.unit.audit.conftest import CHILD_NHS, T0
from tests.unit.audit.test_policy_impacts_visible import BY, IN_FORCE, changed_impact, impact_chain
from tests.unit.console.conftest import IndexingSink, index_records, sign_in

POLICIES = Path(__file__).parents[3] / "policies"


def test_the_agreements_page_lists_each_run_with_who_versions_and_counts(
    make_client: Callable[..., TestClient], sink: IndexingSink, indexed: list[AuditRecord],
    verifier: KeystoreAuditVerifier, keys: FileKeyStore,
) -> None:  # fmt: skip
    policy = load_bundle(POLICIES)
    runs = impact_chain(keys, changed_impact(), at=T0 + timedelta(hours=1), run="000000000001")
    # A later run proposing the bundle this console has loaded, that compared nothing.
    runs += impact_chain(keys, Impact(IN_FORCE, policy.version), at=T0 + timedelta(hours=2),
                         run="000000000002", by="ig.sam (terminal, not signed in)")  # fmt: skip
    assert index_records(sink.store, verifier, runs, start=700).breaks == []
    client = make_client(policy=policy)
    sign_in(client)
    page = client.get("/agreements").text
    table = page[page.index('<table id="policy-impacts">') :]
    table = table[: table.index("</table>")]
    rows = re.findall(r'<tr data-chain="([^"]+)">(.*?)</tr>', table, re.S)
    assert [chain for chain, _ in rows] == ["worker:impact-000000000002",
                                            "worker:impact-000000000001"]  # fmt: skip
    cells = {chain: dict(re.findall(r'<td class="([a-z]+)">(.*?)</td>', row, re.S))
             for chain, row in rows}  # fmt: skip
    first = cells["worker:impact-000000000001"]
    assert first["by"] == BY
    assert first["versions"] == (
        f"<code>{IN_FORCE[:19]}</code> → <code>{'sha256:' + 'b' * 12}</code>"
    )
    assert [first[c] for c in ("events", "decisions", "changed", "stops", "starts")] == [
        "40", "55", "7", "5", "2",
    ]  # fmt: skip
    assert first["consents"].startswith("8<br>")
    assert "3 withdrawals or refusals on file would stop counting" in first["consents"]
    later = cells["worker:impact-000000000002"]
    assert later["by"] == "ig.sam (terminal, not signed in)"
    assert "the bundle loaded here" in later["versions"]
    assert "nothing compared" in later["changed"]
    assert "2026-11-22 09:00:00" in rows[1][1]
    # The view is on record, naming no child: the runs carry none.
    [query] = [q for q in sink.queries() if q.data["page"] == "agreements"]
    assert query.subject_keys == ()
    assert CHILD_NHS not in page


def test_with_no_run_the_page_says_so_even_without_a_bundle(
    make_client: Callable[..., TestClient], indexed: list[AuditRecord]
) -> None:
    client = make_client()
    sign_in(client)
    page = client.get("/agreements").text
    assert 'id="no-policy-impacts"' in page
    assert 'id="policy-impacts"' not in page
