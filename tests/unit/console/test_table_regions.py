"""Every data table on the console's pages scrolls sideways in a region of its own, named by
its heading or caption and reachable by keyboard, so a wide table never pushes the page past
the window (WCAG 1.4.10 Reflow; the override queue and an override's detail are wide)."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

from fastapi.testclient import TestClient

from broker.audit import AuditRecord
from broker.policy import load_bundle
from tests.unit.audit.conftest import CHILD_NHS
from tests.unit.console.conftest import sign_in
from tests.unit.webauth.tables import tables_in_templates, unscrolled_tables


def test_every_table_on_the_consoles_pages_is_in_a_named_scrolling_region(
    make_client: Callable[..., TestClient], indexed: list[AuditRecord]
) -> None:
    client = make_client(policy=load_bundle(Path(__file__).parents[3] / "policies"))
    token = sign_in(client)
    pages = [client.get(p).text for p in ("/", "/overrides", "/agreements", "/chains")]
    pages.append(client.get("/overrides/decision?event=e2&recipient=school-1").text)
    pages.append(
        client.post(
            "/subjects",
            data={"nhs_number": CHILD_NHS, "purpose": "subject_access_request", "csrf": token},
        ).text
    )
    seen = []
    for page in pages:
        tables, problems = unscrolled_tables(page)
        assert problems == []
        seen += tables
    assert {"decisions-table", "pending-overrides", "agreements", "chains", "override-detail",
            "disclosure-log"} <= set(seen)  # fmt: skip


def test_every_table_in_the_consoles_templates_opens_a_scrolling_region_first() -> None:
    """Tables only some data draws (late Encompass notices, reviewed overrides) too."""
    folder = Path(str(resources.files("broker.console").joinpath("templates")))
    found = tables_in_templates(folder)
    assert len(found) >= 7
    for template, before in found:
        assert 'class="table-scroll" role="region"' in before, template
        assert 'tabindex="0"' in before, template
        assert "aria-labelledby=" in before, template
