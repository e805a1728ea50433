"""An override's page says where the sender's written reason is (the audit log keeps no
content), and has no Matched on column: only a look-up of a child fills it."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.unit.console.conftest import child_log_page, sign_in

E2 = "/overrides/decision?event=e2&recipient=school-1"


def _heads(page: str, table: str) -> list[str]:
    found = re.search(rf'<table id="{table}">.*?</table>', page, re.S)
    assert found, table
    return re.findall(r"<th>(.*?)</th>", found.group(0))


def test_the_override_page_says_the_written_reason_is_the_senders_to_ask_for(
    client: TestClient,
) -> None:
    sign_in(client)
    page = client.get(E2).text
    said = re.search(r'<p id="written-reason">(.*?)</p>', page, re.S)
    assert said
    text = " ".join(said.group(1).split())
    assert "audit log keeps no content" in text
    # By the event id shown, from the sender (wmp in the fixture), not the recipient's desk.
    assert "ask wmp for their record of event <code>e2</code>" in text
    assert "school-1 was not sent it" in text


def test_the_override_page_has_no_matched_on_column_and_a_childs_log_keeps_it(
    client: TestClient,
) -> None:
    sign_in(client)
    # override_entry finds the line by event and recipient: nothing sets matched_on on it.
    assert "Matched on" not in _heads(client.get(E2).text, "override-detail")
    log = child_log_page(client)
    table = re.search(r'<table id="[^"]*">.*?</table>', log, re.S)
    assert table
    assert "Matched on" in re.findall(r"<th>(.*?)</th>", table.group(0))
