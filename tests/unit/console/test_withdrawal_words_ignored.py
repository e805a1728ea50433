"""A withdrawal filed with words the bundle did not know (broker/pipeline/_consent.py) shows
on the child's log, the SAR page and the console, as filed, with its code and, in the
legend, that part of it was ignored and the rest withdrawn: never as refused, never silent."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

from fastapi.testclient import TestClient
from markupsafe import escape

from broker.audit import AuditKind, ChainWriter, KeystoreAuditSigner, KeystoreAuditVerifier
from broker.cli._audit_render import disclosure
from broker.governance import AuditStore, disclosure_log
from broker.governance._reasons import FILED_CONSENT_MEANINGS
from broker.keys import FileKeyStore
from broker.linkage import Linker
from broker.principals import Principal
from tests.unit.audit.conftest import CHILD_NHS, T0, index_records
from tests.unit.console.conftest import child_log_page

WITHDRAWAL = "7c6b1b0e-2f1d-4d8e-9b8e-3f4a5b6c7d8e"


def _withdrawal_with_a_word_ignored(
    store: AuditStore, verifier: KeystoreAuditVerifier, keys: FileKeyStore, linker: Linker
) -> None:
    w = ChainWriter("worker:w1", clock=lambda: T0 + timedelta(hours=1))
    child = [linker.from_nhs_number(CHILD_NHS)]
    data = {"state": "withdrawn", "purposes": ["early_help"], "recipients": ["kind:hub"],
            "recorded_at": T0.isoformat(), "valid_until": None, "reason": "unknown-purpose",
            "ignored": [{"reason": "unknown-purpose", "term": "school-health"}]}  # fmt: skip
    records = [w.append(AuditKind.CONSENT_RECORDED, event_id=WITHDRAWAL,
                        party="sandwell-coord", subject_keys=child, data=data)]  # fmt: skip
    records.append(w.checkpoint(KeystoreAuditSigner(keys, Principal("worker"))))
    assert index_records(store, verifier, records).breaks == []


def test_the_sar_lists_it_as_filed_with_its_code_explained_as_a_part_ignored(
    store: AuditStore, verifier: KeystoreAuditVerifier, keys: FileKeyStore, linker: Linker
) -> None:
    _withdrawal_with_a_word_ignored(store, verifier, keys, linker)
    [entry] = disclosure_log(store, linker.from_nhs_number(CHILD_NHS))
    assert (entry.kind, entry.consent, entry.reason) == ("consent", "withdrawn", "unknown-purpose")
    assert (entry.purposes, entry.recipients) == (("early_help",), ("kind:hub",))
    page = disclosure([entry], "html")
    legend = re.search(r'<dl id="reasons">.*?</dl>', page, re.S)
    assert legend, "no legend on the SAR page"
    assert str(escape(FILED_CONSENT_MEANINGS["unknown-purpose"])) in legend.group(0)


def test_the_consoles_log_shows_the_code_on_the_withdrawals_line(
    make_client: Callable[..., TestClient], store: AuditStore,
    verifier: KeystoreAuditVerifier, keys: FileKeyStore, linker: Linker,
) -> None:  # fmt: skip
    _withdrawal_with_a_word_ignored(store, verifier, keys, linker)
    page = child_log_page(make_client())
    assert "unknown-purpose: part ignored" in page
    assert str(escape(FILED_CONSENT_MEANINGS["unknown-purpose"])) in page
    assert ">refused<" not in page
