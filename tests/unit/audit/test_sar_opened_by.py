"""An opening written before acknowledgements refused them may hold an NHS or telephone number
in ``by`` (who opened it), kept in the log for ever: a SAR, in every format and on the
console, shows ``(withheld: not a staff id)`` there instead, and a staff id as it is."""

from __future__ import annotations

import pytest

from broker.audit import AuditKind, AuditRecord, KeystoreAuditVerifier
from broker.cli._audit_render import disclosure
from broker.governance import AuditStore, disclosure_log
from broker.governance._disclosure import WITHHELD_BY, WITHHELD_PURPOSE
from broker.keys import FileKeyStore
from broker.linkage import Linker
from tests.unit.audit.conftest import CHILD_NHS, decision, index_records
from tests.unit.audit.test_sar_complete import _chain

EID = "6f1c1e3a-0000-4000-8000-00000000dd01"
# As the acknowledgement's pattern allows them (no spaces).
NUMBERS = (f"nurse-{CHILD_NHS[:3]}-{CHILD_NHS[3:6]}-{CHILD_NHS[6:]}", "desk.0121.496.0000")


@pytest.mark.parametrize(
    ("field", "shown_as", "withheld", "kept"),
    [("by", "opened_by", WITHHELD_BY, "hub-a.sam"),
     ("purpose", "purpose", WITHHELD_PURPOSE, "early_help")],
)  # fmt: skip
def test_an_opening_whose_by_or_purpose_holds_an_nhs_or_telephone_number_is_withheld(
    field: str, shown_as: str, withheld: str, kept: str,
    store: AuditStore, indexed: list[AuditRecord], verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    """In every format, for openings recorded before acknowledgements refused such values."""
    child = linker.from_nhs_number(CHILD_NHS)
    common = {"event_id": EID, "party": "hub-a", "subject_keys": [child]}
    records = _chain([
        (AuditKind.DECIDED, {**common, "data": decision("shared")}),
        *((AuditKind.OPENED, {**common, "data": {"by": "hub-a.sam", "purpose": "early_help",
                                                 field: value,
                                                 "at": f"2026-11-22T23:0{n}:00+00:00"}})
          for n, value in enumerate((*NUMBERS, kept))),
    ], keys, "worker:w10", hours=15)  # fmt: skip
    assert index_records(store, verifier, records, start=1500).breaks == []
    lines = [e for e in disclosure_log(store, child) if e.kind == "opened" and e.event_id == EID]
    assert [getattr(e, shown_as) for e in lines] == [withheld, withheld, kept]
    for fmt in ("table", "html", "json", "csv"):
        shown = disclosure(lines, fmt, width=4000)
        assert "0121" not in shown, fmt
        assert f"{CHILD_NHS[:3]}-{CHILD_NHS[3:6]}" not in shown, fmt
        assert kept in shown, fmt
