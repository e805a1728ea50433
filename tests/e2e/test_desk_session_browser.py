"""A desk's "not sent" page outlives its session in a real browser: its idle end does not take
the page away (session.js), so the re-send button, which exists on that page only, is still
there to press after signing in again in another tab.

The co-ordinating team's desk app, served by uvicorn on loopback over a real SQLite store, with
the shortest idle limit the setting allows (one minute). Kafka is not what is tested here:
the publisher stands in for one whose Kafka refused the send in time (the page then says the
referral was not sent), and the access acknowledgements are taken as sent. Headless Debian
Chromium, its clock Playwright's, refers a child and gets the "not sent" page; the session is
then signed out from a second tab and the first tab's clock moved past the idle end. The page
stays where it is with a signed-out banner (not the sign-in page, from which Back found no
page and no button), its warning says the referral is safe to send again; once signed in
again in the other tab, the button is answered with the page drawn again for the new session.
A page with nothing to lose still goes to the sign-in page at its idle end. Takes seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from argon2 import PasswordHasher
from playwright.async_api import BrowserContext, Page, async_playwright, expect

from broker.config import DeskSettings, SchoolCalendar
from broker.desk import DeskDeps, children_in, create_desk_app, open_desk_store
from broker.errors import TransportError
from broker.keys import FileKeyStore
from broker.webauth import TotpBox, UserFile, listen
from tests.browser import CHROMIUM_FLAGS, chromium_path, screenshot_dir
from tests.unit.desk.conftest import DEVICE_KEY, PASSWORD, SECRET, T0, USER, FakeAcks, delivery

pytestmark = pytest.mark.slow

REASON = "Mother agreed to a referral.\nThe school has concerns too."


class RefusingPublisher:
    """A publisher whose Kafka refused the send in time: nothing was sent."""

    async def publish(self, event: Mapping[str, Any]) -> None:  # noqa: ARG002  # refused unread
        raise TransportError("publishing to accord.ingress.sandwell-coord: KafkaConnectionError")


@contextlib.asynccontextmanager
async def serving_desk(
    home: Path, *, idle_minutes: int = 1, clock: Callable[[], datetime] | None = None
) -> AsyncIterator[tuple[str, str]]:
    """The desk's address and a child's key, its one record held; ``clock``: the desk's, its
    sessions' included (the wall clock unless given)."""
    store = open_desk_store(None, home=home, party="sandwell-coord")
    record = delivery("e1")
    [child] = children_in(record.view, SECRET)
    store.add_delivery(record, [child], T0)
    keys = FileKeyStore(home / "keys" / "sandwell-coord", create=True)
    users = UserFile(
        home / "desk" / "users.json",
        box=TotpBox.from_keystore(keys, "desk:sandwell-coord", create=True),
        hasher=PasswordHasher(time_cost=1, memory_cost=64, parallelism=1),
    )
    users.add(USER, PASSWORD)
    deps = DeskDeps(
        party="sandwell-coord", party_name="Sandwell", kind="coordinating_team", store=store,
        users=users, acks=FakeAcks(), linkage_key=SECRET, device_key=DEVICE_KEY,
        settings=DeskSettings(session_idle_minutes=idle_minutes), schools=SchoolCalendar(),
        publisher=RefusingPublisher(), **({} if clock is None else {"clock": clock}),
    )  # fmt: skip
    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_desk_app(deps), log_config=None, access_log=False, lifespan="off")
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:  # noqa: ASYNC110  # uvicorn offers a flag, not an event
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}/", child
    finally:
        server.should_exit = True
        await task
        sock.close()
        store.close()


async def sign_in(page: Page, url: str) -> None:
    await page.goto(url + "login")
    await page.fill("input[name=username]", USER)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await expect(page.locator("#signed-in-user")).to_have_text(USER)


async def counting(page: Page) -> None:
    """Once the page's session.js runs (it is deferred: the page's text can be there before
    it), so that the clock moved next moves its countdown, not its start."""
    await expect(page.locator('link[href="/static/session.css"]')).to_have_count(1)


async def sign_out_elsewhere(context: BrowserContext, url: str, page: Page) -> None:
    """The session signed out by another tab: the server now says it has ended."""
    other = await context.new_page()
    csrf = await page.get_attribute("script[data-idle-seconds]", "data-csrf")
    r = await other.request.post(url + "logout", form={"csrf": csrf or ""}, max_redirects=0)
    assert r.status == 303
    status = await other.request.get(url + "session/status")
    assert (await status.json())["signed_in"] is False
    await other.close()


async def test_a_not_sent_page_survives_its_idle_end_with_its_resend_button(
    tmp_path: Path,
) -> None:
    async with (
        serving_desk(tmp_path) as (url, child),
        async_playwright() as pw,
    ):
        browser = await pw.chromium.launch(
            executable_path=chromium_path(), headless=True, args=list(CHROMIUM_FLAGS)
        )
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            page = await context.new_page()
            await page.clock.install()
            await sign_in(page, url)
            await page.goto(f"{url}child/{child}")
            await page.select_option("#action", "refer")
            await page.fill("#reason", REASON)
            await page.click("#decide button[type=submit]")
            await expect(page.locator("h1")).to_have_text("The referral was not sent")
            here = page.url
            await counting(page)
            lost = await page.get_attribute("script[data-idle-seconds]", "data-lost")
            assert lost is not None
            assert "sending it again is safe" in lost
            assert "may have arrived" not in lost

            await sign_out_elsewhere(context, url, page)
            await page.clock.fast_forward("02:00")  # past the minute's idle end
            banner = page.locator("#session-ended")
            await expect(banner).to_be_visible()
            await expect(banner).to_contain_text("sending it again is safe")
            assert page.url == here
            button = page.get_by_role("button", name="Send the referral again")
            await expect(button).to_be_visible()
            await page.screenshot(path=str(screenshot_dir() / "desk-not-sent-signed-out.png"))

            # Signed in again in another tab, as the banner's link opens one.
            assert await page.get_attribute("#session-sign-in", "target") == "_blank"
            other = await context.new_page()
            await sign_in(other, url)
            await other.close()
            await button.click()
            await expect(page.locator("#unchanged")).to_contain_text("The button below sends")
            await expect(page.locator(".error-summary, [role=alert]").first).to_contain_text(
                "This page was from an earlier session"
            )
            await expect(page.get_by_role("button", name="Send the referral again")).to_be_visible()

            # A page with nothing to lose goes to the sign-in page at its idle end.
            await page.goto(url)
            await counting(page)
            await sign_out_elsewhere(context, url, page)
            await page.clock.fast_forward("02:00")
            await page.wait_for_url(url + "login", timeout=10_000)
        finally:
            await browser.close()


async def test_a_short_idle_limits_warning_gives_times_that_add_up_to_it(tmp_path: Path) -> None:
    """A 3-minute limit warns 90 seconds before its end: "1 minute 30 seconds" left after
    "1 minute 30 seconds" unused, not "2 minutes" twice. The desk's clock and the page's move
    together, 95 seconds on."""
    now = [datetime.now(UTC)]
    async with (
        serving_desk(tmp_path, idle_minutes=3, clock=lambda: now[0]) as (url, _),
        async_playwright() as pw,
    ):
        browser = await pw.chromium.launch(
            executable_path=chromium_path(), headless=True, args=list(CHROMIUM_FLAGS)
        )
        try:
            page = await browser.new_page()
            await page.clock.install()
            await sign_in(page, url)
            await counting(page)
            now[0] += timedelta(seconds=95)
            await page.clock.fast_forward("01:35")
            dialog = page.get_by_role("alertdialog")
            await expect(dialog).to_be_visible()
            await expect(dialog).to_have_accessible_description(
                "You will be signed out in 1 minute 30 seconds because nothing has been sent or "
                "opened for 1 minute 30 seconds. What you have typed on this page is not saved."
            )
        finally:
            await browser.close()
