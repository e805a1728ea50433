"""What a person wrote is shown as written, its line breaks kept (an outcome's summary on
the hub's referral page), and a hub's outcome sent is logged as a team's decision is, without
its words; a search's error sits inside the label of the field it is about."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from broker.desk import DeskDeps, DeskStore, children_in
from tests.unit.desk.conftest import SECRET, T0, USER, delivery, sign_in

Make = Callable[..., tuple[TestClient, DeskDeps]]
CSS = Path(__file__).parents[3] / "broker" / "desk" / "static" / "desk.css"


def test_an_outcome_summary_keeps_its_line_breaks_on_the_hubs_referral_page(
    make_client: Make, store: DeskStore
) -> None:
    referral = delivery("r1", recipient="cog-west-bromwich", type="coordination.referral")
    store.add_delivery(referral, children_in(referral.view, SECRET), T0)
    client, _ = make_client(kind="hub", party="cog-west-bromwich")
    token = sign_in(client)
    summary = "Visit booked for 7 Dec.\nSecond line."
    with capture_logs() as logs:
        client.post("/referral/r1/outcome", data={"csrf": token, "outcome": "support_offered",
                                                 "summary": summary})  # fmt: skip
    [sent] = [e for e in logs if e["event"] == "desk_outcome_sent"]  # as a team's decision is
    assert (sent["outcome"], sent["by"]) == ("support_offered", USER)
    assert "Visit booked" not in str(logs)
    page = client.get("/referral/r1").text
    assert '<span class="said">Visit booked for 7 Dec.\nSecond line.</span>' in page
    rule = re.search(r"([^}]*\.said[^{]*)\{([^}]*)\}", CSS.read_text())
    assert rule is not None
    assert "white-space: pre-wrap" in rule.group(2)


def test_a_wrong_nhs_number_s_error_is_inside_the_nhs_number_s_label(
    make_client: Make, store: DeskStore
) -> None:
    client, _ = make_client()
    token = sign_in(client)
    r = client.post("/records/search", data={"csrf": token, "nhs_number": "9993080234"})
    labels = re.findall(r"<label>(.*?)</label>", r.text, flags=re.S)
    [nhs] = [label for label in labels if 'id="nhs_number"' in label]
    assert "That NHS number is not valid" in nhs
    [reference] = [label for label in labels if 'id="reference"' in label]
    assert "field-error" not in reference
