"""A desk whose deliveries are held on a record its keystore cannot open tells its staff, on
every page they see, that new records are not arriving; it names no key and no record."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from broker.desk import DeskDeps
from broker.desk._ingest_held import DeliveriesHeld
from broker.errors import RecordKeyUnavailable
from tests.unit.desk.conftest import sign_in

Make = Callable[..., tuple[TestClient, DeskDeps]]
KEY_ID = "0f" * 8


def _held() -> DeliveriesHeld:
    held = DeliveriesHeld()
    error = RecordKeyUnavailable(
        f"accord.deliver.sandwell-coord partition 0 offset 7 cannot be opened with this "
        f"keystore: it is sealed to sandwell-coord's key {KEY_ID}, revoked",
        topic="accord.deliver.sandwell-coord", partition=0, offset=7, key_id=KEY_ID,
    )  # fmt: skip
    held.hold(error)
    return held


def test_every_page_says_new_records_are_not_arriving_while_held_and_no_more_once_resumed(
    make_client: Make,
) -> None:
    held = _held()
    client, _ = make_client(deliveries_held=held)
    sign_in(client)
    for path in ("/", "/records"):
        page = client.get(path)
        assert page.status_code == 200
        assert 'id="deliveries-held"' in page.text
        assert "New records are not arriving" in page.text
        assert KEY_ID not in page.text
        assert "offset 7" not in page.text
    held.resume()
    assert 'id="deliveries-held"' not in client.get("/").text


def test_the_sign_in_page_shows_no_banner(make_client: Make) -> None:
    """Only staff signed in are told: the sign-in page is anyone's."""
    client, _ = make_client(deliveries_held=_held())
    page = client.get("/login")
    assert page.status_code == 200
    assert 'id="deliveries-held"' not in page.text


def test_while_deliveries_are_parked_staff_are_told_to_ask_for_the_key_directory_import(
    make_client: Make,
) -> None:
    """Parked (signed by a broker key not imported yet): kept, not lost; the banner says
    what to ask for, and names no key and no count."""
    held = DeliveriesHeld()
    held.count_parked(3)
    client, _ = make_client(deliveries_held=held)
    sign_in(client)
    page = client.get("/").text
    assert 'id="deliveries-parked"' in page
    assert "Some records could not be opened yet" in page
    assert "import the latest key directory" in page
    assert 'id="deliveries-held"' not in page
    held.count_parked(0)
    assert 'id="deliveries-parked"' not in client.get("/").text
    assert 'id="deliveries-parked"' not in make_client(deliveries_held=held)[0].get("/login").text
