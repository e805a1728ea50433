"""What a record's page shows: every field the agreement granted, as redaction delivered it
(plain or transformed), the lawful basis, and times in London's zone."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from broker.desk import DeskDeps, DeskStore, children_in
from broker.events import Delivery
from broker.policy import Decision, LawfulBasis, redact
from tests.unit.desk.conftest import SECRET, T0, USER, FakeAcks, delivery, sign_in
from tests.unit.policy.kit import event

Make = Callable[..., tuple[TestClient, DeskDeps]]
KEY = b"p" * 32
#: Every field path the brief lets an agreement share (section 4, "Field paths").
PATHS = (
    "subject.name", "subject.dob", "subject.nhs_number", "subject.address", "subject.postcode",
    "subject.school_urn", "subject.role", "event.reference", "event.need_level",
    "event.child_present", "event.summary", "event.child_voice", "event.categories",
    "event.location", "event.service",
)  # fmt: skip
#: Each transform the brief names, on every path it applies to, over three agreements.
TRANSFORMS = (
    {},
    {"subject.name": "initials", "subject.dob": "age_band",
     "subject.postcode": "postcode_district", "subject.nhs_number": "pseudonym",
     "event.reference": "pseudonym"},
    {"subject.name": "pseudonym", "subject.dob": "year_of_birth",
     "subject.postcode": "pseudonym", "subject.address": "pseudonym",
     "subject.school_urn": "pseudonym", "event.summary": "pseudonym"},
    {"subject.dob": "pseudonym", "event.location": "pseudonym"},
)  # fmt: skip


def _redacted(transforms: dict[str, str]) -> Delivery:
    ev = event(service="family_hub_west")
    basis = LawfulBasis(
        article6="public_task", article9="safeguarding_children", article10="law_enforcement"
    )
    decision = Decision(
        event_id=ev.event_id, event_type=ev.type, sender=ev.sender, recipient="sandwell-coord",
        recipient_kind="coordinating_team", outcome="shared", clause_ids=("c1",),
        agreement_id="a1", agreement_version="1", purpose="early_help", lawful_basis=basis,
        fields_shared=PATHS, transforms=transforms, subjects=(0, 1), decided_at=T0,
        policy_version="sha256:x",
    )  # fmt: skip
    view = redact(ev, decision, pseudonym_key=KEY)
    return Delivery(
        event_id=str(ev.event_id), recipient="sandwell-coord", outcome="shared",
        clauses=("c1",), agreements=("a1",), purpose="early_help",
        lawful_basis=basis.model_dump(exclude_none=True), policy_version="sha256:x",
        decided_at=T0, view=view,
    )  # fmt: skip


def _leaves(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    elif isinstance(value, bool):
        yield "yes" if value else "no"
    elif value is not None:
        yield str(value)


def _text(page: str) -> str:
    """The page as a person reads it: tags out, entities decoded, codes' _ as spaces."""
    return html.unescape(re.sub(r"<[^>]+>", " ", page)).replace("_", " ")


@pytest.mark.parametrize("transforms", TRANSFORMS, ids=["plain", "generalised", "pseudo", "dob"])
def test_every_field_the_agreement_grants_is_on_the_record_page(
    make_client: Make, store: DeskStore, transforms: dict[str, str]
) -> None:
    d = _redacted(transforms)
    view = {k: v for k, v in d.view.items() if k not in ("sharing", "occurred_at")}
    store.add_delivery(d, children_in(d.view, SECRET), T0)
    client, _ = make_client()
    sign_in(client)
    page = client.get(f"/record/{d.event_id}").text
    text = _text(page)
    missing = [v for v in _leaves(view) if v.replace("_", " ").casefold() not in text.casefold()]
    assert missing == []
    # Each under its own key (a name's two parts as one "name"; the rest elsewhere on the page).
    keys = {k for s in view["subjects"] for k in s} | set(view)
    apart = {"subjects", "role", "given_name", "family_name", "event_id", "type", "sender"}
    assert [k for k in keys - apart if f'data-field="{k}"' not in page] == []
    assert {'data-role="child"', 'data-role="parent"'} <= set(re.findall(r'data-role="\w+"', page))
    assert "2026-11-21 22:40 GMT" in text  # occurred_at, London time
    assert "Art 6: public task, Art 6(1)(e)" in text
    assert (
        "Art 9: safeguarding of children and of individuals at risk, Art 9(2)(g), "
        "DPA 2018 Sch 1 para 18"
    ) in text
    # The sender's Part 3 disclosure: not shown as an Art 10 condition of the recipient's.
    assert (
        "disclosed by a competent authority as law enforcement processing, DPA 2018 Part 3 (s35)"
    ) in text
    assert "outside UK GDPR" not in text
    assert "Sch 8" not in text
    assert "Art 10:" not in text


def test_each_transform_shows_under_its_own_name(make_client: Make, store: DeskStore) -> None:
    """A hub's "aged 11-15" comes with its district; initials stand for a name."""
    d = _redacted(TRANSFORMS[1])
    store.add_delivery(d, children_in(d.view, SECRET), T0)
    client, _ = make_client()
    sign_in(client)
    text = _text(client.get(f"/record/{d.event_id}").text)
    assert "initials A. H." in text
    assert "postcode district DY4" in text
    assert re.search(r"aged \d+-\d+", text)
    assert "NHS number (pseudonym) " in text
    assert "Reference (pseudonym)" in text
    assert "DY4 7AA" not in text  # the postcode itself was not granted


def test_a_field_no_page_knows_is_shown_by_its_name_escaped(
    make_client: Make, store: DeskStore
) -> None:
    d = delivery("e1", safeguarding_note="<b>seen</b>",
                 subjects=[{"role": "child", "nhs_number": "9993080233",
                            "tenure": {"kind": "council"}}])  # fmt: skip
    store.add_delivery(d, children_in(d.view, SECRET), T0)
    client, _ = make_client()
    sign_in(client)
    page = client.get("/record/e1").text
    assert "safeguarding note" in page
    assert "&lt;b&gt;seen&lt;/b&gt;" in page
    assert "<b>seen</b>" not in page
    assert "tenure" in page
    assert "council" in page


@pytest.mark.parametrize(
    ("decided", "shown"),
    [
        (datetime(2026, 7, 1, 22, 46, 57, 669883, tzinfo=UTC), "2026-07-01 23:46 BST"),
        (datetime(2026, 12, 5, 22, 46, 57, 669883, tzinfo=UTC), "2026-12-05 22:46 GMT"),
    ],
)
def test_times_are_london_time_to_the_minute_with_the_zone(
    make_client: Make, store: DeskStore, decided: datetime, shown: str
) -> None:
    d = delivery("e1", decided_at=decided, occurred_at=decided.isoformat().replace("+00:00", "Z"))
    store.add_delivery(d, children_in(d.view, SECRET), decided)
    client, _ = make_client()
    sign_in(client)
    page = client.get("/record/e1").text
    assert page.count(shown) == 2  # when it happened, when it was shared
    assert ".669883" not in page
    assert "UTC" not in page


def test_the_record_page_is_acknowledged_for_what_the_record_was_shared_for(
    make_client: Make, store: DeskStore, acks: FakeAcks
) -> None:
    """A voluntary-sector concern shared for early help, opened on a hub's desk, was read
    for early help: not for a referral because of the desk it is on."""
    d = delivery("v1", recipient="cog-west-bromwich", type="voluntary.concern")
    store.add_delivery(d, children_in(d.view, SECRET), T0)
    client, _ = make_client(kind="hub", party="cog-west-bromwich")
    sign_in(client)
    assert "Ruby" in client.get("/record/v1").text
    assert acks.sent == [("v1", USER, "early_help")]
