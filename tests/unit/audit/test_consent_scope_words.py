"""A consent record's purposes and recipients in one wording everywhere a person reads them.

The console said "every hub" but showed purposes as a bare ``*``, while the command line's
table and the html page a family receives showed ``kind:hub``, ``*`` and ``*`` (IG review):
now the console, the table and the page all say every purpose, every hub, every recipient;
JSON and CSV, read by systems, keep the record's own values.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from typing import Any

import pytest

from broker.audit import AuditKind, AuditRecord, ChainWriter, KeystoreAuditSigner
from broker.audit import KeystoreAuditVerifier as Verifier
from broker.governance import AuditStore, disclosure_log
from broker.keys import FileKeyStore
from broker.linkage import Linker
from broker.principals import Principal
from tests.unit.audit.conftest import CHILD_NHS, T0, Run, index_records

RAW = ("kind:hub", "kind:coordinating_team", "*")
WORDS = ("every purpose", "every hub, every coordinating team, every recipient")


def scope_chain(linker: Linker, keys: FileKeyStore) -> list[AuditRecord]:
    w = ChainWriter("worker:w7", clock=lambda: T0 + timedelta(hours=2))
    given = {"state": "given", "purposes": ["*"], "recipients": list(RAW),
             "recorded_at": (T0 + timedelta(hours=1)).isoformat(), "valid_until": None}  # fmt: skip
    child = linker.from_nhs_number(CHILD_NHS)
    rec = w.append(AuditKind.CONSENT_RECORDED, event_id="c-scope", party="sandwell-coord",
                   subject_keys=[child], data=given)  # fmt: skip
    return [rec, w.checkpoint(KeystoreAuditSigner(keys, Principal.WORKER))]


@pytest.fixture
def scoped(store: AuditStore, verifier: Verifier, linker: Linker, keys: FileKeyStore) -> None:
    assert index_records(store, verifier, scope_chain(linker, keys), start=700).breaks == []


@pytest.mark.usefixtures("scoped")
def test_a_consent_lines_scope_is_in_words_and_its_record_keeps_the_codes(
    store: AuditStore, linker: Linker
) -> None:
    [line] = disclosure_log(store, linker.from_nhs_number(CHILD_NHS))
    assert line.shown_purposes == ("every purpose",)
    assert line.shown_recipients == ("every hub", "every coordinating team", "every recipient")
    assert (line.as_dict()["purposes"], line.as_dict()["recipients"]) == (["*"], list(RAW))


@pytest.mark.usefixtures("scoped")
@pytest.mark.parametrize("fmt", ["table", "html", "json", "csv"])
def test_accord_audit_subject_words_the_scope_for_people_and_keeps_it_for_systems(
    fmt: str, audit_db_url: str, run_cli: Run, lookups: list[dict[str, Any]]
) -> None:
    code, out, err = run_cli(
        ["audit", "subject", "--nhs-number", CHILD_NHS, "--db", audit_db_url, "--format", fmt,
         "--reason", "subject_access_request", "--as", "ig.jo"]
    )  # fmt: skip
    assert code == 0, err
    if fmt == "json":
        [line] = json.loads(out)
        assert (line["purposes"], line["recipients"]) == (["*"], list(RAW))
    elif fmt == "csv":
        [row] = list(csv.DictReader(io.StringIO(out)))
        assert (row["purposes"], row["recipients"]) == ("*", ", ".join(RAW))
    else:
        said = " ".join(out.split())
        for words in WORDS:
            assert words in said
        assert "kind:" not in out
        if fmt == "html":
            assert "<td>*</td>" not in out
