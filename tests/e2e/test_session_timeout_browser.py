"""The session-timeout warning in a real browser (WCAG 2.2.1, Timing Adjustable).

The governance console's app, served by uvicorn on loopback over a real SQLite audit index
(the audit sink appends to a real signed chain and files it, as the unit tests' does: no
Kafka, the warning does not touch it), with the shortest idle limit the setting allows, one
minute, so the warning comes 30 seconds after a page loads. Headless Debian Chromium then:
sees the warning as a modal alert dialog with the focus in it and the page behind it inert,
keeps the session with *Stay signed in* (and again with Escape), posts a form after the
original idle limit and is answered, not sent to sign in. At the same time, each in a browser
context (a session) of its own: a page answered to a posted form, then left alone, is signed
out to the sign-in page, which says why and that what was typed was not saved; two tabs left
alone after one was used later than the other: the earlier tab's countdown is set right by
the server (no warning, no reload, its typed text kept), and the session still ends a minute
after its last use, both tabs then on the sign-in page; and a tab signed out from another: no
modal but a focused alert at the top of the page, whose typed text can still be selected.
Everything runs under the console's own Content-Security-Policy: a violation would show in
the browser's log. Takes about a minute and a half, in real time: the waits are the real
minute's, side by side (the longest, the two tabs', is a minute after a page 20 s in).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import uvicorn
from argon2 import PasswordHasher
from playwright.async_api import Page, async_playwright, expect

from broker.audit import KeystoreAuditVerifier
from broker.config import ConsoleSettings, KemSuite
from broker.console import ConsoleDeps, TotpBox, UserFile, create_app
from broker.governance import open_store
from broker.keys import FileKeyStore
from broker.webauth import device_key, listen
from tests.browser import CHROMIUM_FLAGS, chromium_path, screenshot_dir
from tests.unit.console.conftest import IndexingSink

pytestmark = pytest.mark.slow

OFFICER = "ig.jo"
PASSWORD = "a long synthetic passphrase"
IDLE = 60  # seconds: ACCORD_CONSOLE__SESSION_IDLE_MINUTES=1, the least it takes
WARN = 30  # half of it, under the usual two minutes
# A synthetic NHS number from the 999 range, its check digit valid.
NHS = "9990000026"


def _now() -> datetime:
    return datetime.now(UTC)


@contextlib.asynccontextmanager
async def serving_console(home: Path) -> AsyncIterator[str]:
    keys = FileKeyStore(home / "keys", create=True)
    keys.ensure_party("console", kem=KemSuite.X25519)
    keys.set_linkage_key()
    store = open_store(None, home=home)
    users = UserFile(
        home / "console" / "users.json",
        box=TotpBox.from_keystore(keys, "console", create=True),
        hasher=PasswordHasher(time_cost=1, memory_cost=64, parallelism=1),
    )
    users.add(OFFICER, PASSWORD)
    deps = ConsoleDeps(
        store=store, audit=IndexingSink(store, keys, _now), users=users,
        linkage_key=keys.linkage_key(),
        device_key=device_key(keys, "console", users.path, create=True),
        verifier=KeystoreAuditVerifier(keys),
        settings=ConsoleSettings(session_idle_minutes=IDLE // 60),
    )  # fmt: skip
    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(deps), log_config=None, access_log=False, lifespan="off")
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:  # noqa: ASYNC110  # uvicorn offers a flag, not an event
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        await task
        sock.close()
        store.close()


def watched(page: Page, violations: list[str]) -> Page:
    """A refused script, fetch or stylesheet is logged as an error; so is any failed load,
    whose address the response says (the browser's own /favicon.ico is no page of the
    console's: its 404 is expected)."""
    page.on(
        "console",
        lambda m: (
            violations.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.on("pageerror", lambda e: violations.append(str(e)))
    page.on(
        "response",
        lambda r: (
            violations.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico")
            else None
        ),
    )
    return page


@contextlib.asynccontextmanager
async def chromium_page(violations: list[str]) -> AsyncIterator[Page]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium_path(), headless=True, args=list(CHROMIUM_FLAGS)
        )
        try:
            yield watched(
                await browser.new_page(viewport={"width": 1280, "height": 900}), violations
            )
        finally:
            await browser.close()


async def focused_id(page: Page) -> str:
    return str(await page.evaluate("document.activeElement && document.activeElement.id"))


async def wait_until(started: float, seconds: float) -> None:
    await asyncio.sleep(max(0.0, started + seconds - time.monotonic()))


async def sign_in(page: Page, url: str) -> None:
    await page.goto(url + "login")
    await page.fill("input[name=username]", OFFICER)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await expect(page.locator("#signed-in-user")).to_have_text(OFFICER)


async def warned_and_stayed(page: Page, loaded: float) -> None:
    """About 30 s after the page (the limit less the warning), the dialog: modal, labelled,
    the focus on its first button and kept in it, the page behind out of reach. *Stay
    signed in*, by keyboard: the dialog goes, the focus and the typed text are as they were."""
    dialog = page.get_by_role("alertdialog")
    await expect(dialog).to_be_visible(timeout=(WARN + 10) * 1000)
    assert time.monotonic() - loaded >= WARN - 2
    assert await dialog.get_attribute("aria-modal") == "true"
    await expect(dialog).to_have_accessible_name("You are about to be signed out")
    await expect(dialog).to_have_accessible_description(
        "You will be signed out in 30 seconds because nothing has been sent or opened for "
        "30 seconds. What you have typed on this page is not saved."
    )
    assert await focused_id(page) == "session-stay"
    assert await page.locator("main").get_attribute("inert") == ""
    await page.keyboard.press("Tab")
    assert await focused_id(page) == "session-sign-out"
    await page.keyboard.press("Tab")  # the focus stays in the dialog
    assert await focused_id(page) == "session-stay"
    await page.screenshot(path=str(screenshot_dir() / "console-session-timeout.png"))
    await page.keyboard.press("Enter")
    await expect(dialog).to_be_hidden()
    assert await page.locator("main").get_attribute("inert") is None
    assert await page.input_value("input[name=nhs_number]") == NHS
    assert await page.evaluate("document.activeElement.name") == "nhs_number"


async def signed_out_when_left_alone(page: Page, url: str, answered: float) -> None:
    """Warned, then sent to the sign-in page, which says why (as an alert, the user name
    not focused over it) and that what was typed was not saved; the server agrees."""
    await page.fill("input[name=given_name]", "Amelia")
    await expect(page.get_by_role("alertdialog")).to_be_visible(timeout=(WARN + 10) * 1000)
    await page.wait_for_url(
        url + "login?next=%2Fsubjects&lost=1", timeout=(IDLE - WARN + 10) * 1000
    )
    assert time.monotonic() - answered >= IDLE
    notices = page.locator("main [role=alert]")
    await expect(notices.first).to_contain_text(
        "Your session ended (idle for 1 minute, or the console restarted)"
    )
    await expect(notices.nth(1)).to_contain_text("was not saved")
    assert await page.locator("input[name=username]").get_attribute("autofocus") is None
    assert await page.locator("#signed-in-user").count() == 0
    await page.screenshot(path=str(screenshot_dir() / "console-session-ended.png"))
    await page.goto(url + "subjects")
    assert page.url.startswith(url + "login")


def navigations(page: Page) -> list[str]:
    """Every address the tab's page loads from now on, as it loads."""
    seen: list[str] = []
    page.on("framenavigated", lambda f: seen.append(f.url) if f == page.main_frame else None)
    return seen


async def two_tabs_left_alone(first: Page, url: str, violations: list[str]) -> None:
    """Tab A's page loads, tab B's 20 s later, then nobody does anything. At A's warning
    time the server says the session has 50 s left (B used it): A warns of nothing and
    stays as it is, text and all; a tab never keeps a session alive on its own, so both
    warn and the session ends a minute after B's page, both tabs then on the sign-in page
    (A's saying that what was typed there was not saved)."""
    a = first
    b = watched(await a.context.new_page(), violations)
    await sign_in(a, url)
    await a.goto(url + "subjects")
    a_loaded = time.monotonic()
    a_went = navigations(a)
    await a.fill("input[name=nhs_number]", NHS)
    await wait_until(a_loaded, 20)
    await b.goto(url + "agreements")
    b_loaded = time.monotonic()
    b_went = navigations(b)

    # Past A's own warning time (30 s) and its own deadline (61 s): nothing on A.
    await wait_until(a_loaded, WARN + 8)
    await expect(a.get_by_role("alertdialog")).to_have_count(0)
    await wait_until(a_loaded, IDLE + 6)
    assert a_went == []  # not sent to sign in and back, so no page reloaded and audited
    assert await a.input_value("input[name=nhs_number]") == NHS
    # B's warning, due 30 s after B's page, and A's, set right by the server, too.
    await expect(a.get_by_role("alertdialog")).to_be_visible()
    await expect(b.get_by_role("alertdialog")).to_be_visible()

    await a.wait_for_url(url + "login?next=%2Fsubjects&lost=1", timeout=20_000)
    await b.wait_for_url(url + "login?next=%2Fagreements", timeout=20_000)
    assert time.monotonic() - b_loaded >= IDLE
    # The first tab there finds the ended session and says so; the cookie it is then given
    # is a new sign-in form's, so the second is a plain sign-in page (A's saying what was lost).
    said = [await tab.locator("main").inner_text() for tab in (a, b)]
    assert any("Your session ended" in text for text in said), said
    assert "was not saved" in said[0]
    assert (a_went, b_went) == (
        [url + "login?next=%2Fsubjects&lost=1"],
        [url + "login?next=%2Fagreements"],
    )
    await b.goto(url + "subjects")
    assert b.url.startswith(url + "login")


async def signed_out_in_another_tab(first: Page, url: str, violations: list[str]) -> None:
    """Tab A has typed text; tab B signs out. At A's warning time the server says the session
    has ended: A shows no modal but a focused alert at the top of <main>, the page is usable
    (the typed text can be selected to copy), and Tab reaches *Sign in again*."""
    a = first
    b = watched(await a.context.new_page(), violations)
    await sign_in(a, url)
    await a.goto(url + "subjects")
    await a.fill("input[name=nhs_number]", NHS)
    await b.goto(url + "chains")
    await b.click("header form.signout button")
    await b.wait_for_url(url + "login**")

    banner = a.locator("#session-ended")
    await expect(banner).to_be_visible(timeout=(WARN + 10) * 1000)
    assert await banner.get_attribute("role") == "alert"
    await expect(banner.locator("h2")).to_have_text("You have been signed out")
    await expect(banner.locator("p")).to_have_text(
        "What you typed on this page is not saved: copy it now if you need it. Sign in again"
    )
    assert await focused_id(a) == "session-ended"
    await expect(a.get_by_role("alertdialog")).to_have_count(0)
    assert await a.locator("main").get_attribute("inert") is None
    assert await a.evaluate("document.querySelector('main').firstElementChild.id") == (
        "session-ended"
    )
    await a.keyboard.press("Tab")
    assert await focused_id(a) == "session-sign-in"
    await a.click("input[name=nhs_number]")  # not covered by an overlay, not inert
    selected = await a.evaluate(
        "(() => { const f = document.querySelector('input[name=nhs_number]'); f.select();"
        " return document.activeElement === f ? f.value.slice(f.selectionStart, f.selectionEnd)"
        " : null; })()"
    )
    assert selected == NHS
    await a.screenshot(path=str(screenshot_dir() / "console-session-ended-elsewhere.png"))
    await a.click("#session-sign-in")
    await a.wait_for_url(url + "login?next=%2Fsubjects&lost=1")


async def posted_then_left_alone(page: Page, url: str) -> None:
    """A form is posted and answered (a page drawn from a POST), then nobody does anything:
    signed out as :func:`signed_out_when_left_alone` says, back to the form's page after."""
    await sign_in(page, url)
    await page.goto(url + "subjects")
    await page.fill("input[name=nhs_number]", NHS)
    await page.select_option("select[name=purpose]", index=1)
    await page.click("main button[type=submit]")
    await page.wait_for_load_state()
    answered = time.monotonic()
    assert page.url == url + "subjects"
    await expect(page.get_by_role("heading", name="Disclosure log", exact=True)).to_be_visible()
    await signed_out_when_left_alone(page, url, answered)


async def test_the_warning_keeps_a_session_on_request_and_ends_it_when_left_alone(
    tmp_path: Path,
) -> None:
    violations: list[str] = []
    async with serving_console(tmp_path / "home") as url, chromium_page(violations) as page:
        assert page.context.browser is not None
        browser = page.context.browser

        async def own_page() -> Page:
            """A tab in a browser context of its own: its own cookies, so its own session."""
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            return watched(await context.new_page(), violations)

        # The waits are real time (a minute's limit at least), so the sessions run side by
        # side rather than one after another.
        left_alone = asyncio.create_task(posted_then_left_alone(await own_page(), url))
        two_tabs = asyncio.create_task(two_tabs_left_alone(await own_page(), url, violations))
        elsewhere = asyncio.create_task(
            signed_out_in_another_tab(await own_page(), url, violations)
        )
        await sign_in(page, url)
        await page.goto(url + "subjects")
        loaded = time.monotonic()  # the session's idle clock started with this page
        await page.fill("input[name=nhs_number]", NHS)
        await page.focus("input[name=nhs_number]")
        await expect(page.get_by_role("alertdialog")).to_be_hidden()
        await warned_and_stayed(page, loaded)

        # The warning comes again 30 s after the keep-alive; Escape stays signed in too.
        await expect(page.get_by_role("alertdialog")).to_be_visible(timeout=(WARN + 10) * 1000)
        await page.keyboard.press("Escape")
        await expect(page.get_by_role("alertdialog")).to_be_hidden()

        # Past the original idle limit the form is answered, not sent to sign in.
        await wait_until(loaded, IDLE + 5)
        await page.select_option("select[name=purpose]", index=1)
        await page.click("main button[type=submit]")
        await page.wait_for_load_state()
        assert page.url == url + "subjects"
        await expect(page.locator("#signed-in-user")).to_have_text(OFFICER)
        await expect(page.get_by_role("heading", name="Disclosure log", exact=True)).to_be_visible()

        await left_alone
        await two_tabs
        await elsewhere
    # Under the console's own Content-Security-Policy: nothing refused, no script error.
    assert violations == [], violations
