"""A record's page says what the record does not include, in plain field names (a path with no
words shown as itself), and what it shares only in part, never naming an agreement or clause
beside them (a restriction may have held a field back, and a delivery does not say which);
that agreements and protective rules decided it, that information governance can see those
decisions, and not to ask the sender for it outside the agreed routes. It is read from the
view's keys (a field shared but empty has its key; broker.policy._redact), so a field the
record did not hold is not taken for one withheld; no withheld value is ever in a delivery, or
on the page. Read against the real engine's decisions: test_not_shared_engine."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from broker.desk import DeskDeps, DeskStore, children_in
from broker.desk._not_shared import NotShared, not_shared
from broker.desk._stored import StoredRecord
from broker.events import FIELD_PATHS, Delivery
from tests.unit.desk.conftest import SECRET, T0, delivery, sign_in

Make = Callable[..., tuple[TestClient, DeskDeps]]
HUB = "cog-west-bromwich"

#: What police-to-cog (sandwell-early-help) gives a hub: names, an age band, the postcode
#: district, role, need level and categories.
POLICE_TO_COG: dict[str, Any] = {
    "event_id": "p1", "type": "police.child_concern", "sender": "wmp",
    "occurred_at": "2026-11-22T21:15:00Z", "need_level": 2, "categories": ["domestic_abuse"],
    "subjects": [{"role": "child", "given_name": "Ruby", "family_name": "Hart",
                  "age_band": "5-9", "postcode_district": "B70"}],
}  # fmt: skip


def _shared(view: dict[str, Any], *, clauses: tuple[str, ...] = ("police-to-cog",)) -> Delivery:
    return delivery("p1", recipient=HUB).model_copy(
        update={"view": view, "clauses": clauses, "agreements": ("sandwell-early-help",)}
    )


def _line(page: str) -> str | None:
    found = re.search(r'<p class="not-shared" id="not-shared">(.*?)</p>', page, re.S)
    return None if found is None else html.unescape(re.sub(r"<[^>]+>", "", found.group(1)))


def test_a_hub_record_says_what_its_agreement_did_not_share_in_plain_words(
    make_client: Make, store: DeskStore
) -> None:
    d = _shared(POLICE_TO_COG)
    store.add_delivery(d, children_in(d.view, SECRET), T0)
    client, _ = make_client(kind="hub", party=HUB)
    sign_in(client)
    line = _line(client.get("/record/p1").text)
    assert line == (
        "This record does not include: NHS number, address, school, the sender's reference, "
        "whether the child was present, summary, the child's voice, location, service. "
        "Shared only in part: date of birth (age band only), postcode (district only). "
        "What is left out was decided by the sharing agreements and by rules that protect "
        "people, such as a refuge's address; it is recorded in the broker's audit log, which "
        "information governance can see, so do not ask the sender for it outside the agreed "
        "routes."
    )
    assert "outcome" not in line  # only a referral outcome has one: never missed elsewhere
    assert "subject." not in line  # no schema paths


def test_a_field_shared_but_empty_is_not_said_to_be_withheld() -> None:
    view = {**POLICE_TO_COG, "summary": None}
    view["subjects"] = [{**POLICE_TO_COG["subjects"][0], "nhs_number": None}]
    d = _shared(view)
    got = not_shared(_stored(d))
    assert got is not None
    assert "summary" not in got.fields
    assert "NHS number" not in got.fields


def test_a_record_that_shares_every_field_says_nothing_nor_does_a_hidden_one(
    make_client: Make, store: DeskStore
) -> None:
    everything = {
        **POLICE_TO_COG, "reference": "WMP/1", "child_present": True, "summary": "s",
        "child_voice": "v", "location": "home", "service": "police",
        "subjects": [{"role": "child", "given_name": "Ruby", "family_name": "Hart",
                      "dob": "2016-02-11", "nhs_number": "9993080233", "address": "1 Road",
                      "postcode": "B70 8NR", "school_urn": "146201"}],
    }  # fmt: skip
    d = _shared(everything)
    store.add_delivery(d, children_in(d.view, SECRET), T0)
    client, _ = make_client(kind="hub", party=HUB)
    sign_in(client)
    assert _line(client.get("/record/p1").text) is None
    store.hide(["p1"], "Consent withdrawn for early help.", T0)
    assert not_shared(store.record("p1")) is None  # type: ignore[arg-type]
    d2 = _shared(POLICE_TO_COG).model_copy(update={"event_id": "p2"})
    store.add_delivery(d2, children_in(d2.view, SECRET), T0)
    store.hide(["p2"], "Consent withdrawn for early help.", T0)
    assert _line(client.get("/record/p2").text) is None


def test_a_path_with_no_words_is_shown_as_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("broker.desk._not_shared.FIELD_PATHS", (*FIELD_PATHS, "event.mood"))
    got = not_shared(_stored(_shared(POLICE_TO_COG)))
    assert got is not None
    assert got.fields[-1] == "event.mood"


def test_the_hubs_referral_page_says_it_too_naming_no_clause(
    make_client: Make, store: DeskStore
) -> None:
    view = {**POLICE_TO_COG, "type": "coordination.referral", "sender": "sandwell-coord"}
    d = _shared(view, clauses=("coord-refers",))
    store.add_delivery(d, children_in(d.view, SECRET), T0)
    client, _ = make_client(kind="hub", party=HUB)
    sign_in(client)
    line = _line(client.get("/referral/p1").text)
    assert line is not None
    assert line.startswith("This record does not include: NHS number, address, school")
    assert "coord-refers" not in line
    assert "sandwell-early-help" not in line


def test_a_field_one_person_has_and_another_not_is_for_some_people_only() -> None:
    """Per-person scopes (broker.policy._decide._scopes): the child's address, not the
    parent's; with roles in the view, whose; without, "some people"."""
    child = {**POLICE_TO_COG["subjects"][0], "address": "1 Road", "dob": "2016-02-11"}
    parent = {"role": "parent", "given_name": "Jo", "family_name": "Hart", "age_band": "18+",
              "postcode_district": "B70"}  # fmt: skip
    got = not_shared(_stored(_shared({**POLICE_TO_COG, "subjects": [child, parent]})))
    assert got is not None
    assert "address" not in got.fields
    assert got.some_only == ("address (child only)",)
    assert "date of birth (age band only for parent)" in got.in_part
    assert "postcode (district only)" in got.in_part  # everyone's
    unroled = [{k: v for k, v in p.items() if k != "role"} for p in (child, parent)]
    got = not_shared(_stored(_shared({**POLICE_TO_COG, "subjects": unroled})))
    assert got is not None
    assert got.some_only == ("address",)
    assert "date of birth (age band only for some people)" in got.in_part
    assert "role (child, parent…)" in got.fields


def test_a_role_given_to_one_person_with_it_and_one_without_names_no_role() -> None:
    """Two children, one given the address: "child only" would say the other has it too."""
    one = {**POLICE_TO_COG["subjects"][0], "address": "1 Road"}
    two = {**POLICE_TO_COG["subjects"][0], "given_name": "Sam"}
    got = not_shared(_stored(_shared({**POLICE_TO_COG, "subjects": [one, two]})))
    assert got is not None
    assert got.some_only == ("address",)


def test_a_record_shared_only_in_part_says_so_and_the_same_sentence() -> None:
    everything = {
        **POLICE_TO_COG, "reference": "WMP/1", "child_present": True, "summary": "s",
        "child_voice": "v", "location": "home", "service": "police",
        "subjects": [{"role": "child", "initials": "RH", "dob": "2016-02-11",
                      "nhs_number": "9993080233", "address": "1 Road", "postcode": "B70 8NR",
                      "school_urn": "146201"}],
    }  # fmt: skip
    got = not_shared(_stored(_shared(everything)))
    assert got == NotShared(fields=(), some_only=(), in_part=("name (initials only)",))


def _stored(d: Delivery) -> StoredRecord:
    return StoredRecord(
        event_id=d.event_id, event_type=str(d.view["type"]), sender=str(d.view["sender"]),
        reference=None, occurred_at=None, decided_at=T0, received_at=T0, purpose=d.purpose,
        outcome=d.outcome, decision={"clauses": list(d.clauses),
                                     "agreements": list(d.agreements)},
        view=d.view, hidden=False, hidden_reason=None,
    )  # fmt: skip


def test_the_page_says_for_some_people_only(make_client: Make, store: DeskStore) -> None:
    child = {**POLICE_TO_COG["subjects"][0], "address": "1 Road"}
    parent = {**POLICE_TO_COG["subjects"][0], "role": "parent", "given_name": "Jo"}
    d = _shared({**POLICE_TO_COG, "subjects": [child, parent]})
    store.add_delivery(d, children_in(d.view, SECRET), T0)
    client, _ = make_client(kind="hub", party=HUB)
    sign_in(client)
    line = _line(client.get("/record/p1").text)
    assert line is not None
    assert "This record does not include: NHS number, school, " in line
    assert ". For some people only: address (child only). Shared only in part: " in line
