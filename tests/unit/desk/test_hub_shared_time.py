"""The hub's Referrals page dates a referral by when the broker shared it, not by when this
desk read it from Kafka: a desk started late, after ``reset-offsets`` or a restore reads every
referral at once, and the page must not make them all look new."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from fastapi.testclient import TestClient

from broker.desk import DeskDeps, DeskStore, children_in
from tests.unit.desk.conftest import SECRET, T0, delivery, sign_in

Make = Callable[..., tuple[TestClient, DeskDeps]]


def test_the_referrals_page_shows_when_a_referral_was_shared_not_when_the_desk_read_it(
    make_client: Make, store: DeskStore
) -> None:
    """Shared 09:00 and 09:30 (UTC, so GMT in November), both read by a desk started at
    14:00: the page lists the shared times, newest first, and nowhere the desk's start time."""
    late_start = T0 + timedelta(hours=5)
    for event_id, minutes, reference in (("r1", 0, "DESK-1"), ("r2", 30, "DESK-2")):
        referral = delivery(
            event_id, recipient="cog-west-bromwich", type="coordination.referral",
            reference=reference, decided_at=T0 + timedelta(minutes=minutes),
        )  # fmt: skip
        store.add_delivery(referral, children_in(referral.view, SECRET), late_start)
    client, _ = make_client(kind="hub", party="cog-west-bromwich")
    sign_in(client)
    page = client.get("/").text
    table = page.split('id="referrals"')[1]
    assert "<th>Shared</th>" in table
    assert "2026-11-23 14:00" not in page
    rows = table.split('class="referral"')[1:]
    for row, shared, reference in zip(
        rows, ("2026-11-23 09:30 GMT", "2026-11-23 09:00 GMT"), ("DESK-2", "DESK-1"), strict=True
    ):
        assert shared in row
        assert reference in row
    assert "the referral DESK-2 shared 2026-11-23 09:30 GMT" in rows[0]
    assert "Newest first, by when the broker shared each referral" in page
