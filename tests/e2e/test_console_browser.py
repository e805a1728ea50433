"""The governance console in a real browser, over the real pipeline's audit log.

A selection of the project's own scenarios (``policies/scenarios``, on the project's bundle;
see ``tests/e2e/playback.py``) goes through the real worker on real Kafka; the audit log is
indexed; ``accord console`` runs as its own process; headless Debian Chromium, driven by
Playwright, then does what an IG officer does: is refused without a session, is refused with
a wrong password and without the one-time code, signs in with password and code (the account
is made with a TOTP second factor, as ``accord console add-user`` does by default; the test
is the authenticator app), finds a child by NHS number and reads the disclosure log, reviews
a safeguarding override, and verifies the chain. Screenshots of each step are saved under
``artifacts/screenshots``. Afterwards the audit topic itself must hold the console's look-ups
(who looked at whom) and the review, on a chain that verifies.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pyotp
import pytest
from playwright.async_api import Locator, Page, async_playwright, expect

from broker.audit import AuditKind, KeystoreAuditVerifier
from broker.devkafka import EmbeddedKafka
from broker.governance import read_topic, signed_chains
from broker.keys import FileKeyStore
from broker.linkage import Linker
from tests.browser import CHROMIUM_FLAGS, chromium_path, screenshot_dir, server_logs
from tests.e2e.playback import PROJECT_POLICIES, Harness, busiest_child, project_scenarios
from tests.kafka_helpers import clients, kafka_env

pytestmark = pytest.mark.slow

OFFICER = "ig.jo"
PASSWORD = "a long synthetic passphrase"


def accord(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(  # our own CLI
        [sys.executable, "-m", "broker", *args],
        env=env, input=stdin, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def console_env(tmp_path: Path, isolated_kafka: EmbeddedKafka) -> dict[str, str]:
    return dict(
        os.environ,
        ACCORD_HOME=str(tmp_path),
        **kafka_env(isolated_kafka.bootstrap),  # the console logs in as itself
        ACCORD_AUDIT_DB=f"sqlite:///{tmp_path / 'audit.db'}",
    )


@contextlib.contextmanager
def running_console(
    console_env: dict[str, str], policies: Path
) -> Iterator[tuple[str, pyotp.TOTP]]:
    """``accord console`` on a free port: its URL once it is listening, and the officer's
    authenticator (the second factor ``add-user`` enrolled and printed)."""
    out = accord(console_env, "console", "add-user", OFFICER, "--password-stdin", stdin=PASSWORD)
    secret = re.search(r"^  secret: +([A-Z2-7]+)$", out, re.MULTILINE)
    assert secret is not None, out
    # Files, not pipes: nobody reads a pipe while the test runs, and a full one (64 KiB of
    # warnings) would block the console mid-test.
    out_path, err_path = server_logs("console")
    with out_path.open("w") as out, err_path.open("w") as err:
        proc = subprocess.Popen(  # our own CLI
            [sys.executable, "-m", "broker", "console", "--port", "0",
             "--policies", str(policies)],
            env=console_env, stdout=out, stderr=err, text=True,
        )  # fmt: skip
    try:
        found = None
        for _ in range(600):
            found = re.search(r"governance console at (http://\S+/) ", out_path.read_text())
            if found is not None or proc.poll() is not None:
                break
            time.sleep(0.1)
        if found is None:
            pytest.fail(f"the console did not start: {err_path.read_text()[-2000:]}")
        yield found.group(1), pyotp.TOTP(secret.group(1))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextlib.asynccontextmanager
async def browser_page() -> AsyncIterator[Page]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium_path(), headless=True, args=list(CHROMIUM_FLAGS)
        )
        try:
            yield await browser.new_page(viewport={"width": 1280, "height": 900})
        finally:
            await browser.close()


async def shot(page: Page, name: str) -> None:
    await page.screenshot(path=str(screenshot_dir() / f"console-{name}.png"), full_page=True)


async def test_an_ig_officer_signs_in_finds_a_child_and_reviews_an_override(
    *,
    isolated_kafka: EmbeddedKafka, tmp_path: Path, project_keys: FileKeyStore,
    console_env: dict[str, str],
) -> None:  # fmt: skip
    keys = project_keys
    h = Harness(isolated_kafka.bootstrap, PROJECT_POLICIES, keys, tmp_path)
    scenarios = project_scenarios()
    linker = Linker(keys.linkage_key())
    nhs = busiest_child(scenarios)
    child_key = linker.from_nhs_number(nhs)
    await h.start(scenarios[0].at)
    try:
        decisions = await h.play_all(scenarios, linker)
    finally:
        await h.finish()
    expected = {(str(d.event_id), d.recipient, d.outcome) for d, named in decisions
                if child_key in named}  # fmt: skip
    overrides = [(str(d.event_id), d.recipient) for d, _ in decisions
                 if d.outcome == "shared_override"]  # fmt: skip
    assert expected, "the chosen child should have decisions"
    assert overrides, "the scenarios should hold a safeguarding override"
    accord(console_env, "audit", "index")

    with running_console(console_env, PROJECT_POLICIES) as (url, totp):
        async with browser_page() as page:
            await officer_session(page, url, totp, nhs, expected, overrides[0])

    # The audit topic holds the console's own records: who looked at whom, and the review.
    verifier = KeystoreAuditVerifier(keys)
    on_topic = signed_chains(await read_topic(clients(isolated_kafka.bootstrap)), verifier)
    assert on_topic.refused == {}
    chains = on_topic.chains
    [console_chain] = [c for c in chains if c.startswith("console:")]
    mine = chains[console_chain]
    queries = [r for r in mine if r.kind is AuditKind.CONSOLE_QUERY]
    looked_up = [r for r in queries if r.data["page"] == "subject"]
    assert [(r.data["officer"], r.subject_keys) for r in looked_up] == [(OFFICER, (child_key,))]
    pages = {r.data["page"] for r in queries}
    assert pages >= {"dashboard", "subject", "overrides", "chains.verify"}
    [review] = [r for r in mine if r.kind is AuditKind.OVERRIDE_REVIEWED]
    assert (review.event_id, review.party, review.data["reviewed_by"]) == (*overrides[0], OFFICER)
    assert all(nhs not in r.to_bytes().decode() for r in mine)
    out = accord(console_env, "audit", "verify", "--from-topic")
    assert out.startswith("audit log intact (topic)")


async def left_the_queue(page: Page, url: str, row: Locator) -> None:
    """The reviewed override leaves the queue, at once or when the indexer has caught up."""
    if "once the indexer" in await page.locator(".flash").inner_text():
        # The console's indexer took longer than the 10 s the page waits for it (a slow
        # machine): the flash says so truthfully, and the row goes once it has caught up.
        for _ in range(60):
            if await row.count() == 0:
                break
            await asyncio.sleep(0.5)
            await page.goto(url + "overrides")
    await expect(row).to_have_count(0)


async def sign_in(page: Page, url: str, totp: pyotp.TOTP) -> None:
    """Refused without a session, with a wrong password, and without the code; then in."""
    # Without a session, every page sends the officer to sign in.
    await page.goto(url + "overrides")
    assert page.url == url + "login?next=%2Foverrides"

    await page.fill("input[name=username]", OFFICER)
    await page.fill("input[name=password]", "not the password")
    await page.fill("input[name=code]", totp.now())
    await page.click("button[type=submit]")
    await expect(page.locator("#sign-in-error")).to_contain_text("Sign-in failed")
    await shot(page, "1-wrong-password")
    await page.goto(url)
    assert page.url == url + "login"  # still no session

    await page.fill("input[name=username]", OFFICER)
    await page.fill("input[name=password]", PASSWORD)  # the right password, but no code
    await page.click("button[type=submit]")
    await expect(page.locator("#sign-in-error")).to_contain_text("Sign-in failed")
    assert page.url == url + "login"

    await page.fill("input[name=username]", OFFICER)
    await page.fill("input[name=password]", PASSWORD)
    await page.fill("input[name=code]", totp.now())
    await page.click("button[type=submit]")


async def officer_session(
    page: Page, url: str, totp: pyotp.TOTP, nhs: str, expected: set[tuple[str, str, str]],
    override: tuple[str, str],
) -> None:  # fmt: skip
    await sign_in(page, url, totp)
    await expect(page.locator("#signed-in-user")).to_have_text(OFFICER)
    assert page.url == url
    await expect(page.locator("#overrides-pending")).not_to_have_text("0")
    await expect(page.locator("#decisions-chart")).to_be_visible()
    await shot(page, "2-dashboard")

    await page.click("text=Find a child")
    await page.fill("input[name=nhs_number]", nhs)
    await page.select_option("select[name=purpose]", "subject_access_request")
    await page.click("text=Show the disclosure log")
    rows = page.locator("#disclosure-log tbody tr.decision")
    await expect(rows).to_have_count(len(expected))
    got = set()
    for i in range(await rows.count()):
        cells = rows.nth(i).locator("td")
        event_id = await cells.nth(2).locator("code").inner_text()
        recipient = await cells.nth(4).inner_text()
        outcome = (await cells.nth(5).locator(".outcome").inner_text()).replace(" ", "_")
        got.add((event_id, recipient, outcome))
    assert got == expected
    assert nhs not in await page.content()
    assert nhs not in page.url
    await shot(page, "3-disclosure-log")

    await page.click("text=Override reviews")
    event_id, recipient = override
    ids = f'[data-event="{event_id}"][data-recipient="{recipient}"]'
    row = page.locator(f"#pending-overrides tr{ids}")
    await row.locator("select[name=finding]").select_option("justified")
    await row.locator("input[name=reference]").fill("IG-2026-114")
    await shot(page, "4-override-queue")
    await row.locator("button[type=submit]").click()
    await expect(page.locator(".flash")).to_contain_text(
        f"Review of event {event_id} to {recipient} recorded in the audit log"
    )
    await left_the_queue(page, url, row)
    # ...and is listed with its finding among the reviewed overrides.
    await expect(page.locator(f"#reviewed-overrides tr{ids} .finding")).to_have_text("justified")
    await expect(page.locator(f"#reviewed-overrides tr{ids} .reference")).to_have_text(
        "IG-2026-114"
    )
    await shot(page, "5-override-reviewed")

    await page.click("text=Audit chain")
    await page.click("text=Verify every chain now")
    await expect(page.locator("#verify-result")).to_contain_text("audit log intact")
    await shot(page, "6-chain-verified")

    await page.click("text=Sign out")
    await page.goto(url + "subjects")
    assert page.url == url + "login?next=%2Fsubjects"
