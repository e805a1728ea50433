"""The "New records are not arriving" banner is a labelled static region, not an alert: it is on
every page while deliveries are held, and an alert would be announced again on every page,
competing with a refused form's focused error summary."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi.testclient import TestClient

from broker.desk import DeskDeps
from broker.desk._ingest_held import DeliveriesHeld
from broker.errors import RecordKeyUnavailable
from tests.unit.desk.conftest import sign_in

Make = Callable[..., tuple[TestClient, DeskDeps]]


def _held() -> DeliveriesHeld:
    held = DeliveriesHeld()
    held.hold(
        RecordKeyUnavailable(
            "accord.deliver.sandwell-coord partition 0 offset 7 cannot be opened",
            topic="accord.deliver.sandwell-coord",
            partition=0,
            offset=7,
            key_id="0f" * 8,
        )
    )
    return held


def test_the_held_banner_is_a_labelled_region_on_a_refused_forms_page_too(
    make_client: Make,
) -> None:
    client, _ = make_client(deliveries_held=_held())
    token = sign_in(client)
    # A refused search: drawn again in place with its focused error summary.
    r = client.post("/records/search", data={"csrf": token, "nhs_number": "12"})
    assert r.status_code == 400
    banner = re.search(r'<p class="banner" id="deliveries-held"[^>]*>', r.text)
    assert banner is not None
    tag = banner.group(0)
    assert 'role="region"' in tag
    assert 'aria-labelledby="deliveries-held-title"' in tag
    assert 'role="alert"' not in tag
    assert '<strong id="deliveries-held-title">New records are not arriving.</strong>' in r.text
    assert 'id="error-summary" role="alert"' in r.text  # the page's one alert
