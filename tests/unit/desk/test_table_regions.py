"""Every data table on the desk's pages scrolls sideways in a region of its own, named by its
heading and reachable by keyboard, so a wide table never pushes the page past a 320 px
window (WCAG 1.4.10 Reflow: the records list and a school's notices did)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from fastapi.testclient import TestClient

from broker.desk import DeskDeps, DeskStore, Flag, children_in
from tests.unit.desk.conftest import SECRET, T0, delivery, sign_in
from tests.unit.webauth.tables import tables_in_templates, unscrolled_tables

Make = Callable[..., tuple[TestClient, DeskDeps]]


def _pages(client: TestClient, paths: list[str]) -> list[str]:
    sign_in(client)
    return [client.get(p).text for p in paths]


def test_every_table_on_the_desks_pages_is_in_a_named_scrolling_region(
    make_client: Make, store: DeskStore
) -> None:
    d = delivery("e1")
    store.add_delivery(d, children_in(d.view, SECRET), datetime.now(UTC))
    [child] = children_in(d.view, SECRET)
    store.add_flag(Flag(flag_id="f" * 32, party="sandwell-coord", rule="multi-agency",
                        title="Flag", child=child, event_ids=("e1",), trigger_event_id="e1",
                        raised_at=datetime.now(UTC), window_seconds=86400),
                   datetime.now(UTC))  # fmt: skip
    referral = delivery("r1", recipient="cog-west-bromwich", type="coordination.referral")
    store.add_delivery(referral, children_in(referral.view, SECRET), datetime.now(UTC))
    notice = delivery("n1", recipient="school-146201", type="police.domestic_incident")
    store.add_delivery(notice, [], T0)
    team, _ = make_client()
    token = sign_in(team)
    decided = team.post(f"/child/{child}/decide", data={"csrf": token, "action": "signpost",
                                                        "reason": "Synthetic reason."})  # fmt: skip
    pages = [decided.text, *_pages(team, ["/", "/records"])]
    pages += _pages(make_client(kind="hub", party="cog-west-bromwich")[0], ["/"])
    pages += _pages(make_client(kind="school", party="school-146201")[0], ["/"])
    seen = []
    for page in pages:
        tables, problems = unscrolled_tables(page)
        assert problems == []
        seen += tables
    assert {"decisions", "records", "referrals", "notices"} <= set(seen)


def test_every_table_in_the_desks_templates_opens_a_scrolling_region_first() -> None:
    """Tables only some data draws (new records since a decision, referrals sent) too."""
    folder = Path(str(resources.files("broker.desk").joinpath("templates")))
    found = tables_in_templates(folder)
    assert len(found) >= 7
    for template, before in found:
        assert 'class="table-scroll" role="region"' in before, template
        assert 'tabindex="0"' in before, template
        assert "aria-labelledby=" in before, template
