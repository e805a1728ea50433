"""The dashboard's charts show their numbers as text, not only in hover tooltips."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.unit.console.conftest import sign_in


def _values(page: str, chart: str) -> list[str]:
    svg = re.search(rf'<svg id="{chart}".*?</svg>', page, re.S)
    assert svg, chart
    return re.findall(r'<text class="value"[^>]*>([^<]*)</text>', svg.group(0))


def test_each_days_total_and_each_quarantine_count_is_drawn_as_text(client: TestClient) -> None:
    sign_in(client)
    page = client.get("/").text
    # The indexed chain's one day: four decisions (shared twice, not shared, an override),
    # and one record quarantined as invalid-event.
    assert _values(page, "decisions-chart") == ["4"]
    assert _values(page, "quarantine-chart") == ["1"]
