"""The console words a consent record's scope as the command line's table and page do."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi.testclient import TestClient

from broker.audit import KeystoreAuditVerifier
from broker.governance import AuditStore
from broker.keys import FileKeyStore
from broker.linkage import Linker
from tests.unit.audit.conftest import CHILD_NHS, index_records
from tests.unit.audit.test_consent_scope_words import WORDS, scope_chain
from tests.unit.console.conftest import sign_in


def test_the_console_says_every_purpose_as_it_says_every_hub(
    make_client: Callable[..., TestClient], store: AuditStore, verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    assert index_records(store, verifier, scope_chain(linker, keys), start=700).breaks == []
    client = make_client()
    token = sign_in(client)
    page = client.post("/subjects", data={"nhs_number": CHILD_NHS, "csrf": token,
                                          "purpose": "subject_access_request"}).text  # fmt: skip
    [row] = re.findall(r'<tr class="consent [^"]*">(.*?)</tr>', page, re.S)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    to, purpose = 4, 7
    assert (cells[purpose], cells[to]) == WORDS
