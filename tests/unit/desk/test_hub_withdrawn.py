"""A referral whose consent was withdrawn, on the hub's desk: its reference is blank wherever
it is listed or headed (as on Records), and the outcome summary written about it is not shown."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from broker.desk import DeskDeps, DeskStore, children_in
from tests.unit.desk.conftest import SECRET, T0, delivery, sign_in

Make = Callable[..., tuple[TestClient, DeskDeps]]


def test_a_withdrawn_referrals_reference_and_outcome_summary_are_not_shown_on_the_hub(
    make_client: Make, store: DeskStore
) -> None:
    """As on Records: a hidden referral's reference is blank on the hub's home page and its
    own page, and the summary the hub sent about it is not shown either."""
    referral = delivery(
        "r1", recipient="cog-west-bromwich", type="coordination.referral",
        reference="DESK-7A3F19C2",
    )  # fmt: skip
    store.add_delivery(referral, children_in(referral.view, SECRET), T0)
    client, _ = make_client(kind="hub", party="cog-west-bromwich")
    token = sign_in(client)
    form = {"csrf": token, "outcome": "support_offered", "summary": "Visit booked for Ruby."}
    client.post("/referral/r1/outcome", data=form)
    assert "DESK-7A3F19C2" in client.get("/").text
    store.hide(["r1"], "Consent withdrawn for early help.", T0)
    for page in ("/", "/referral/r1", "/records"):
        assert "DESK-7A3F19C2" not in client.get(page).text, page
    page = client.get("/referral/r1").text
    assert "Visit booked for Ruby." not in page
    assert "support offered" in page
    assert "its summary is not shown: consent withdrawn" in page
