"""The override review queue: every agreement an override was made under."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi.testclient import TestClient

from broker.audit import KeystoreAuditVerifier as Verifier
from broker.governance import AuditStore
from broker.keys import FileKeyStore
from broker.linkage import Linker
from tests.unit.audit.conftest import CHILD_NHS, T0, index_records
from tests.unit.audit.test_disclosure_grounds import overrides_under_two_and_one_agreements
from tests.unit.console.conftest import sign_in


def test_the_override_queue_lists_every_agreement_of_an_override(
    make_client: Callable[..., TestClient], store: AuditStore, verifier: Verifier, linker: Linker,
    keys: FileKeyStore,
) -> None:  # fmt: skip
    """An override to the MASH made under the early-help and the MASH agreements."""
    child = linker.from_nhs_number(CHILD_NHS)
    records = overrides_under_two_and_one_agreements(keys, child, T0)
    assert index_records(store, verifier, records).breaks == []
    client = make_client()
    sign_in(client)
    page = client.get("/overrides").text
    # The fourth cell of each row: agreement / clauses.
    cell = r'<tr data-event="(e2\d)"[^>]*>\s*(?:<td[^>]*>.*?</td>\s*){3}<td[^>]*>(.*?)</td>'
    rows = re.findall(cell, page, re.S)
    assert rows == [
        ("e20", "early-help <small>to-mash</small><br>mash <small>to-mash-safeguarding</small>"),
        ("e21", "isa-1<br><small>isa-1/c1</small>"),
    ]
