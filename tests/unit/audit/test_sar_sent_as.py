"""A SAR answer says what was actually sent: a field a decision transformed is shown as what
it became (``NHS number (as a pseudonym)``), never as the original, in a table, a page and on
the console; JSON and CSV keep the paths and add ``transforms`` (field -> transform). The
answer says once what travels with every shared record."""

from __future__ import annotations

import csv
import io
import json

from broker.audit import AuditKind, AuditRecord, KeystoreAuditVerifier
from broker.cli._audit_render import disclosure
from broker.governance import AuditStore, DisclosureEntry, disclosure_log
from broker.governance._sent import ALWAYS_SENT, NOT_SENT_FIELDS, TRANSFORM_WORDS, field_sent_as
from broker.keys import FileKeyStore
from broker.linkage import Linker
from broker.policy import TRANSFORMS
from tests.unit.audit.conftest import CHILD_NHS, decision, index_records
from tests.unit.audit.test_sar_complete import _chain

EID = "6f1c1e3a-0000-4000-8000-00000000bb01"
FIELDS = ["subject.name", "subject.dob", "subject.nhs_number", "subject.postcode",
          "event.need_level"]  # fmt: skip
TRANSFORMED = {
    "subject.name": "initials",
    "subject.dob": "year_of_birth",
    "subject.nhs_number": "pseudonym",
    "subject.postcode": "postcode_district",
}


def _transformed_share(
    store: AuditStore, verifier: KeystoreAuditVerifier, linker: Linker, keys: FileKeyStore
) -> list[DisclosureEntry]:
    child = linker.from_nhs_number(CHILD_NHS)
    data = decision("shared", fields_shared=FIELDS, transforms=TRANSFORMED)
    records = _chain([
        (AuditKind.DECIDED, {"event_id": EID, "party": "hub-a", "subject_keys": [child],
                             "data": data}),
        (AuditKind.DELIVERED, {"event_id": EID, "party": "hub-a", "subject_keys": [child],
                               "data": {"fields": FIELDS}}),
    ], keys, "worker:w7", hours=12)  # fmt: skip
    assert index_records(store, verifier, records, start=1200).breaks == []
    return [e for e in disclosure_log(store, child) if e.event_id == EID]


def test_a_transformed_field_is_shown_as_what_was_sent_never_as_the_original(
    store: AuditStore, indexed: list[AuditRecord], verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    lines = _transformed_share(store, verifier, linker, keys)
    assert [e.kind for e in lines] == ["decision", "delivered"]
    for line in lines:
        assert line.shown_fields == (
            "name (initials only)", "date of birth (year only)", "NHS number (as a pseudonym)",
            "postcode (district only)", "level of need",
        )  # fmt: skip
    assert lines[0].shown_withheld == ("address",)  # every field in words, withheld too
    for fmt in ("table", "html"):
        shown = disclosure(lines, fmt, width=400)
        assert "subject.address" not in shown, fmt
        # "Withheld" reads, to a family, as kept from them: the recipient was not sent these.
        assert "fields not sent" in shown, fmt
        assert "withheld" not in shown.lower(), fmt
        assert NOT_SENT_FIELDS in shown, fmt  # said once, in the notes
        assert "NHS number (as a pseudonym)" in shown, fmt
        assert "subject.nhs_number" not in shown, fmt
        assert "subject.dob" not in shown, fmt


def test_json_and_csv_keep_the_paths_and_say_each_fields_transform(
    store: AuditStore, indexed: list[AuditRecord], verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    lines = _transformed_share(store, verifier, linker, keys)
    for row in json.loads(disclosure(lines, "json")):
        assert row["fields_shared"] == FIELDS
        assert row["transforms"] == TRANSFORMED
    rows = list(csv.DictReader(io.StringIO(disclosure(lines, "csv"))))
    assert [r["transforms"] for r in rows] == [
        "subject.dob=year_of_birth; subject.name=initials; subject.nhs_number=pseudonym; "
        "subject.postcode=postcode_district"
    ] * 2
    header = next(csv.reader(io.StringIO(disclosure(lines, "csv"))))
    assert header[-3:-1] == ["sent", "transforms"]  # every earlier column keeps its place


def test_every_transform_of_the_policy_language_has_words_and_an_unknown_one_is_named() -> None:
    assert set(TRANSFORM_WORDS) == set(TRANSFORMS)
    assert field_sent_as("subject.dob", "month_only") == "date of birth (transformed: month_only)"
    assert field_sent_as("subject.dob", None) == "date of birth"
    assert field_sent_as("event.not_yet_worded", None) == "event.not_yet_worded"


def test_the_answer_says_once_what_travels_with_every_shared_record(
    store: AuditStore, indexed: list[AuditRecord], verifier: KeystoreAuditVerifier,
    linker: Linker, keys: FileKeyStore,
) -> None:  # fmt: skip
    lines = _transformed_share(store, verifier, linker, keys)
    assert "event id, the kind of event, the organisation that sent it and when" in ALWAYS_SENT
    table = disclosure(lines, "table", width=4000)
    assert table.count(ALWAYS_SENT) == 1
    assert disclosure(lines, "html").count(ALWAYS_SENT) == 1
