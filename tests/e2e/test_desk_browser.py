"""The recipients' desk in a real browser, over the real worker on real Kafka.

The project's bundle (``policies/``) is provisioned on a broker of this module's own; the
worker runs as ``accord worker``; three agencies publish contacts about one synthetic child in
West Bromwich, and the co-ordinating team records the family's consent. Two desks run as
``accord desk --as sandwell-coord`` and ``accord desk --as cog-west-bromwich`` (each signs in
its own people, password and TOTP code), and the team's flag service runs as ``accord desk
flags --as sandwell-coord``: the three agencies' contacts raise the multi-agency flag.
Headless Debian Chromium then does the work: the team opens the flagged child's timeline and
refers to the hub; the hub sees the referral and records an outcome; the team sees the
outcome. The broker decided the referral and the outcome like any event; the governance
console's disclosure log for the child then lists the views by named people, the referral's
decision and the outcome's. Finally the family withdraws consent for the hub, and the hub's
desk hides the referral with the reason. The child's school received the police incident as
an Operation Encompass notice: its desk, run in-process with a clock five days on, shows the
unread notice as late and its metric counts it. Screenshots go to ``artifacts/screenshots``
(``desk-*.png``; docs/desk/ keeps copies).
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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
from aiokafka.partitioner import DefaultPartitioner
from playwright.async_api import Browser, Page, async_playwright, expect

import tests.e2e.test_console_browser as console_browser
from broker.audit import AuditKind, AuditRecord
from broker.config import DeskSettings, KeyProtection, KeystoreSettings, Settings
from broker.desk import (
    Flag,
    child_key,
    desk_linkage_key,
    flag_id,
    open_desk_store,
    run_desk,
)
from broker.devkafka import EmbeddedKafka
from broker.keys import FileKeyStore
from broker.policy import Policy
from broker.sdk import Publisher
from broker.synthetic import SyntheticFamilies
from broker.webauth import TotpBox, UserFile
from tests.browser import CHROMIUM_FLAGS, chromium_path, screenshot_dir, server_logs
from tests.e2e.test_desk_flags import FlagService, window_ids
from tests.e2e.worker_proc import POLICIES, WorkerProcess, prepared, read_audit
from tests.kafka_helpers import clients, kafka_env, settings_as, tries_within

pytestmark = pytest.mark.slow

TEAM, HUB = "sandwell-coord", "cog-west-bromwich"
PASSWORD = "a long synthetic passphrase"
TEAM_USER, HUB_USER = "kim.ward", "sam.okafor"
OUTCOME = "coordination.referral_outcome"


def accord(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    return console_browser.accord(env, *args, stdin=stdin)


@pytest.fixture
def desk_env(tmp_path: Path, isolated_kafka: EmbeddedKafka) -> dict[str, str]:
    return dict(
        os.environ,
        ACCORD_HOME=str(tmp_path),
        ACCORD_POLICIES=str(POLICIES),
        ACCORD_KEYSTORE__PATH=str(tmp_path / "keys"),
        ACCORD_AUDIT_DB=f"sqlite:///{tmp_path / 'audit.db'}",
        **kafka_env(isolated_kafka.bootstrap),  # each desk logs in as its own party
    )


@contextlib.contextmanager
def running_desk(env: dict[str, str], party: str, user: str) -> Iterator[tuple[str, pyotp.TOTP]]:
    """``accord desk --as PARTY`` on a free port: its URL once listening, and the person's
    authenticator (the second factor ``accord desk add-user`` enrolled)."""
    out = accord(env, "desk", "add-user", "--as", party, user, "--password-stdin", stdin=PASSWORD)
    secret = re.search(r"^  secret: +([A-Z2-7]+)$", out, re.MULTILINE)
    assert secret is not None, out
    out_path, err_path = server_logs(f"desk-{party}")
    with out_path.open("w") as out_fh, err_path.open("w") as err_fh:
        proc = subprocess.Popen(  # our own CLI
            [sys.executable, "-m", "broker", "desk", "--as", party, "--port", "0"],
            env=env, stdout=out_fh, stderr=err_fh, text=True,
        )  # fmt: skip
    try:
        found = None
        for _ in range(600):
            found = re.search(rf"desk of {party} at (http://\S+/) ", out_path.read_text())
            if found is not None or proc.poll() is not None:
                break
            time.sleep(0.1)
        if found is None:
            pytest.fail(f"the desk did not start: {err_path.read_text()[-2000:]}")
        yield found.group(1), pyotp.TOTP(secret.group(1))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "Traceback" not in err_path.read_text(), err_path.read_text()[-3000:]


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium_path(), headless=True, args=list(CHROMIUM_FLAGS)
        )
        try:
            yield browser
        finally:
            await browser.close()


async def new_page(browser: Browser) -> Page:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    return await context.new_page()


async def shot(page: Page, name: str, *, full_page: bool = True) -> None:
    await page.screenshot(path=str(screenshot_dir() / f"desk-{name}.png"), full_page=full_page)


async def sign_in(page: Page, url: str, user: str, totp: pyotp.TOTP) -> None:
    await page.goto(url)
    assert page.url == url + "login"  # no session, no page
    await page.fill("input[name=username]", user)
    await page.fill("input[name=password]", PASSWORD)
    await page.fill("input[name=code]", totp.now())
    await page.click("button[type=submit]")
    await expect(page.locator("#signed-in-user")).to_have_text(user)


async def reload_until(page: Page, url: str, selector: str, *, count: int = 1) -> None:
    """The desk shows what it has ingested; reload (as a person would) until it has it."""
    for _ in range(120):
        await page.goto(url)
        if await page.locator(selector).count() >= count:
            return
        await asyncio.sleep(0.5)
    await expect(page.locator(selector)).to_have_count(count)


async def until_audit(bootstrap: str, done: Any, what: str) -> list[AuditRecord]:
    for _ in tries_within(480):
        audit = await read_audit(bootstrap)
        if done(audit):
            return audit
        await asyncio.sleep(0.5)
    consent = [(r.kind.value, r.party, r.data) for r in audit if "consent" in r.kind.value]
    pytest.fail(f"the worker did not get there: {what}; consent records: {consent}")


def contacts(fam: SyntheticFamilies, child: dict[str, Any]) -> list[dict[str, Any]]:
    """Three agencies' contacts in the last days: police, A&E, school attendance."""
    now = datetime.now(UTC)
    return [
        fam.event(kind, sender, subjects=[child], need_level=level,
                  occurred_at=now - timedelta(days=days), categories=cats)
        for kind, sender, level, days, cats in (
            ("police.domestic_incident", "wmp", 3, 6, ["domestic_abuse"]),
            ("health.ae_attendance", "swbh", 2, 4, ["injury"]),
            ("education.attendance_concern", "school-146201", 2, 2, ["attendance"]),
        )
    ]  # fmt: skip


async def setup_world(
    bootstrap: str, policy: Policy, keys: FileKeyStore
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """The child, the consent (given by the family, recorded by the team) and the contacts."""
    fam = SyntheticFamilies(seed=15)
    child = fam.subject("child", family_name="Hart", postcode="B70 8NR", school_urn="146201")
    consent = {
        "subject": {"nhs_number": child["nhs_number"]}, "state": "given",
        "purposes": ["*"], "recipients": ["kind:hub", "kind:coordinating_team"],
        "recorded_by": TEAM, "recorded_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
    }  # fmt: skip
    async with Publisher(TEAM, keys, clients(bootstrap, TEAM)) as pub:
        await pub.publish_consent(consent)
    await until_audit(
        bootstrap, lambda a: any(r.kind is AuditKind.CONSENT_RECORDED for r in a), "consent"
    )
    events = contacts(fam, child)
    team_view = {k: child[k] for k in ("nhs_number", "given_name", "family_name", "dob")}
    key = child_key(desk_linkage_key(keys, party=TEAM), team_view)
    assert key is not None
    for held, event in enumerate(events, start=1):
        async with Publisher(event["sender"], keys, clients(bootstrap, event["sender"])) as pub:
            await pub.publish(event)
        # Oldest first, each once the flag service holds the one before: a record reaching
        # the desk after a later one sees only its own window (the flag would differ), and
        # records on different partitions may otherwise reach it in either order.
        await until_held(bootstrap, key, held)
    del policy
    return child, events, consent


async def until_held(bootstrap: str, child: str, records: int) -> None:
    """Until the team's flag service's window state for ``child`` holds ``records`` records."""
    held = 0
    for _ in tries_within(480):
        held = len(await window_ids(bootstrap, child) or [])
        if held >= records:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"the flag service holds {held} of the child's {records} records")


def nudge(referral_id: str) -> dict[str, Any]:
    """A referral about another child, without consent (shared with nobody), on the same
    ingress partition as ``referral_id``."""
    partitions = list(range(3))  # provisioning's default
    target = DefaultPartitioner()(referral_id.encode(), partitions, partitions)
    fam = SyntheticFamilies(seed=16)
    other = fam.subject("child", postcode="B70 9AA")
    while True:
        event = fam.event("coordination.referral", TEAM, subjects=[other], summary="nudge")
        if DefaultPartitioner()(event["event_id"].encode(), partitions, partitions) == target:
            return event


async def test_the_team_refers_a_flagged_child_and_the_hub_answers_all_audited(
    isolated_kafka: EmbeddedKafka, tmp_path: Path, desk_env: dict[str, str]
) -> None:
    bootstrap = isolated_kafka.bootstrap
    policy, keys = await prepared(bootstrap, tmp_path)
    worker = WorkerProcess(tmp_path, keys, bootstrap, POLICIES)
    # The real flag service (`accord desk flags --as sandwell-coord`) raises the flags.
    flags = FlagService(tmp_path, keys, bootstrap)
    del flags.env["ACCORD_KAFKA__PARTITIONS"]  # that test's one partition; here provisioning's
    worker.start()
    flags.start()
    try:
        await run_the_loop(bootstrap, policy, keys, tmp_path, desk_env)
    finally:
        flags.stop()
        worker.stop()


async def run_the_loop(  # noqa: PLR0915  # one story, told in order
    bootstrap: str, policy: Policy, keys: FileKeyStore, tmp_path: Path, env: dict[str, str]
) -> None:
    child, events, consent = await setup_world(bootstrap, policy, keys)
    secret = desk_linkage_key(keys, party=TEAM)
    team_view = {k: child[k] for k in ("nhs_number", "given_name", "family_name", "dob")}
    key = child_key(secret, team_view)
    assert key is not None
    ids = tuple(e["event_id"] for e in events)
    flag = Flag(
        flag_id=flag_id("multi-agency", key, ids[-1]), party=TEAM, rule="multi-agency",
        title="Contacts from two or more agencies within 90 days", child=key, event_ids=ids,
        trigger_event_id=ids[-1], raised_at=datetime.fromisoformat(events[-1]["occurred_at"]),
        window_seconds=90 * 86400,
    )  # fmt: skip
    # What the test expects the service to raise: the three agencies' contacts make the
    # multi-agency flag on the third (its id is deterministic, so computed here).

    with (
        running_desk(env, TEAM, TEAM_USER) as (team_url, team_totp),
        running_desk(env, HUB, HUB_USER) as (hub_url, hub_totp),
    ):
        async with chromium() as browser:
            team = await new_page(browser)
            await sign_in(team, team_url, TEAM_USER, team_totp)
            row = f'#open-flags tr.flag[data-flag="{flag.flag_id}"]'
            await reload_until(team, team_url, row)
            rules = {await r.get_attribute("data-rule")
                     for r in await team.locator("#open-flags tr.flag").all()}  # fmt: skip
            # Police's domestic abuse and A&E within 30 days may flag too; nothing else can.
            assert "multi-agency" in rules <= {"multi-agency", "domestic-abuse-repeat"}, rules
            assert child["family_name"] not in await team.locator("#open-flags").inner_text()
            # Six rows, six "Open the timeline" links: each names its flag to a screen
            # reader, in text nobody sees.
            link = team.locator(row).get_by_role("link")
            await expect(link).to_have_accessible_name(
                re.compile(r"^Open the timeline for the flag “Contacts from two or more")
            )
            box = await link.locator(".visually-hidden").bounding_box()
            assert box is not None
            assert box["width"] <= 1
            assert box["height"] <= 1
            await shot(team, "1-team-flags")

            await team.locator(row).locator("text=Open the timeline").click()
            await expect(team.locator(f"#flag-{flag.flag_id} .window")).to_have_text(
                "window: 90 days"
            )
            # The timeline as reached from anywhere (no ?flag=): its decision settles every
            # open flag of the child, ticked by default.
            child_url = f"{team_url}child/{key}"
            await reload_until(team, child_url, "#timeline article.record", count=3)
            await expect(team.locator("#timeline section.agency")).to_have_count(3)
            await expect(team.locator("#timeline")).to_contain_text(child["given_name"])
            # The heading says who the child is; the title (kept in the browser's history)
            # and the address do not.
            await expect(team.locator("#child-name")).to_have_text(
                f"{child['given_name']} {child['family_name']}"
            )
            assert child["family_name"] not in await team.title()
            assert child["family_name"] not in team.url
            await shot(team, "2-team-timeline")

            # A reason of spaces only is refused, and the page drawn again in place keeps the
            # decision chosen: only the reason is typed again.
            await team.select_option("select[name=action]", "refer")
            await team.fill("textarea[name=reason]", "   ")
            await team.click("text=Record the decision")
            await expect(team.locator("#error-summary")).to_be_focused()
            await expect(team.locator("#error-summary a[href='#reason']")).to_be_visible()
            await expect(team.locator("select[name=action]")).to_have_value("refer")
            await team.fill("textarea[name=reason]", "Three agencies in a week; family agreed.")
            await team.click("text=Record the decision")
            await expect(team.locator(".flash")).to_contain_text("sent through the broker")
            referral_id = await team.locator("#child-referrals li").get_attribute("data-event")
            assert referral_id is not None
            await expect(team.locator("#decisions")).to_contain_text(TEAM_USER)
            await expect(team.locator(".flag-note[data-decided=no]")).to_have_count(0)
            await team.goto(team_url)
            await expect(team.locator("#no-flags")).to_be_visible()
            # Every record, flagged or not, is one click from the top bar; the list names
            # nobody.
            await team.click("header nav >> text=Records")
            await expect(team.locator("#records tr.record-row")).to_have_count(len(ids))
            assert child["family_name"] not in await team.content()
            await shot(team, "9-team-records")
            # A record at 320 CSS px wide (WCAG 1.4.10 Reflow): it fits, nothing is cut off.
            await team.locator("#records tr.record-row").first.get_by_role("link").click()
            await expect(team.locator("article.record dl.view")).to_be_visible()
            await team.set_viewport_size({"width": 320, "height": 900})
            wide, screen = await team.evaluate(
                "[document.documentElement.scrollWidth, window.innerWidth]"
            )
            assert wide <= screen == 320, (wide, screen)
            await shot(team, "10-team-record-320px")
            await team.set_viewport_size({"width": 1280, "height": 900})
            await team.goto(child_url)

            # The same browser: both desks are at 127.0.0.1 (ports apart), and a browser keeps
            # cookies by host, not port. The hub's sign-in must not sign the team out (the
            # team's page is used again below).
            hub = await team.context.new_page()
            await sign_in(hub, hub_url, HUB_USER, hub_totp)
            row = f'#referrals tr.referral[data-event="{referral_id}"]'
            await reload_until(hub, hub_url, row)
            await expect(hub.locator(row)).to_contain_text("no outcome sent from this desk")
            await shot(hub, "3-hub-referrals")
            await hub.locator(row).locator("text=Open").click()
            await expect(hub.locator("#referral")).to_contain_text(child["family_name"])
            await expect(hub.locator("#referral")).to_contain_text("family agreed")
            # The referral names the child by NHS number (so the hub's outcome lands in the
            # same disclosure log) but never the address: not the hub's to see.
            page_text = await hub.content()
            assert child["nhs_number"] in page_text
            assert child["address"] not in page_text
            await hub.select_option("select[name=outcome]", "support_offered")
            await hub.fill("textarea[name=summary]", "Family support worker allocated.")
            await shot(hub, "4-hub-outcome-form")
            await hub.click("text=Accept and record the outcome")
            await expect(hub.locator(".flash")).to_contain_text("Outcome support offered sent")

            outcome = f'#child-referrals li[data-event="{referral_id}"] .referral-outcome'
            for _ in range(120):
                await team.goto(child_url)
                if "support offered" in await team.locator(outcome).inner_text():
                    break
                await asyncio.sleep(0.5)
            await expect(team.locator(outcome)).to_have_text("support offered")
            await shot(team, "5-team-outcome")

            # The family withdraws consent for the hubs: the hub's desk hides the referral.
            withdrawn = dict(consent, state="withdrawn", recipients=["kind:hub"],
                             recorded_at=datetime.now(UTC).isoformat())  # fmt: skip
            async with Publisher(TEAM, keys, clients(bootstrap, TEAM)) as pub:
                await pub.publish_consent(withdrawn)
                # The worker recalls a share at the next transaction of the partition task
                # that made it; in this quiet test nothing else would reach that partition.
                await pub.publish(nudge(referral_id))

            def noticed(audit: list[AuditRecord]) -> bool:
                return any(r.kind is AuditKind.CONSENT_WITHDRAWN_NOTICE and r.party == HUB
                           and referral_id in r.data["event_ids"] for r in audit)  # fmt: skip

            await until_audit(bootstrap, noticed, "a withdrawal notice to the hub")
            await reload_until(hub, f"{hub_url}referral/{referral_id}", ".hidden-record")
            await expect(hub.locator(".hidden-record")).to_contain_text("Consent withdrawn")
            assert child["family_name"] not in await hub.content()
            await shot(hub, "6-hub-withdrawn")

    await the_school_sees_a_late_notice(bootstrap, policy, keys, tmp_path, events[0])
    await the_audit_log_names_who(bootstrap, env, keys, child, ids, referral_id)


async def the_school_sees_a_late_notice(
    bootstrap: str, policy: Policy, keys: FileKeyStore, home: Path, incident: dict[str, Any]
) -> None:
    """The police incident reached the child's school as an Encompass notice. The school's
    desk runs in this process with its clock five days on (past the next school day's 08:30,
    whatever the weekday): nobody acknowledged it, so it shows as late, and the metric says 1."""
    school, user = "school-146201", "jo.head"
    settings = Settings(
        home=home,
        kafka=settings_as(bootstrap, school),
        keystore=KeystoreSettings(path=keys.path, protection=KeyProtection.NONE),
        desk=DeskSettings(port=0),
    )
    box = TotpBox.from_keystore(
        FileKeyStore(settings.keystore_path(school)), f"desk:{school}", create=True
    )
    UserFile(settings.desk_users_file(school), box=box).add(user, PASSWORD)
    later = datetime.now(UTC) + timedelta(days=5)
    store = open_desk_store(None, home=home, party=school)
    stop = asyncio.Event()
    started: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    desk = asyncio.create_task(
        run_desk(settings, school, policy, store, clients(bootstrap, school), clock=lambda: later,
                 started=lambda run: started.set_result(run.url), stop=stop)
    )  # fmt: skip
    try:
        url = await asyncio.wait_for(started, 60)
        async with chromium() as browser:
            page = await new_page(browser)
            await page.goto(url)
            await page.fill("input[name=username]", user)
            await page.fill("input[name=password]", PASSWORD)
            await page.click("button[type=submit]")
            row = f'#notices tr.notice[data-event="{incident["event_id"]}"]'
            await reload_until(page, url, row)
            await expect(page.locator(row).locator(".status")).to_contain_text("LATE")
            await shot(page, "8-school-late-notice")
            await page.goto(url + "metrics")
            assert "accord_desk_encompass_late_notices 1.0" in await page.content()
    finally:
        stop.set()
        await asyncio.wait_for(desk, 30)
        store.close()


async def the_audit_log_names_who(
    bootstrap: str, env: dict[str, str], keys: FileKeyStore, child: dict[str, Any],
    ids: tuple[str, ...], referral_id: str,
) -> None:  # fmt: skip
    """Every view named its person; the broker decided the referral and the outcome."""
    audit = await until_audit(
        bootstrap,
        lambda a: any(r.kind is AuditKind.OPENED and r.data.get("by") == HUB_USER for r in a),
        "the hub's view acknowledged",
    )
    opened = {(r.event_id, r.party, r.data["by"], r.data["purpose"])
              for r in audit if r.kind is AuditKind.OPENED}  # fmt: skip
    # Each opening for what the record was shared for (its decision's purpose), whichever
    # page opened it: the team's timeline, record page and search, the hub's referral page.
    shared_for = {(r.event_id, r.party): r.data["purpose"]
                  for r in audit if r.kind is AuditKind.DECIDED and r.party}  # fmt: skip
    assert {(eid, TEAM, TEAM_USER, shared_for[eid, TEAM]) for eid in ids} <= opened
    assert (referral_id, HUB, HUB_USER, "early_help") in opened
    assert all(purpose == shared_for[eid, party] for eid, party, _, purpose in opened), opened
    assert {by for _, _, by, _ in opened} == {TEAM_USER, HUB_USER}  # people, never software
    decided = {(r.event_id, r.party, r.data["outcome"])
               for r in audit if r.kind is AuditKind.DECIDED}  # fmt: skip
    assert (referral_id, HUB, "shared") in decided
    outcomes = [(r.event_id, r.data["outcome"]) for r in audit if r.kind is AuditKind.DECIDED
                and r.party == TEAM and r.data.get("event_type") == OUTCOME]  # fmt: skip
    assert [o for _, o in outcomes] == ["shared"], outcomes

    # The governance console: the child's disclosure log by NHS number.
    accord(env, "audit", "index")
    nhs = child["nhs_number"]
    with console_browser.running_console(env, POLICIES) as (url, totp):
        async with chromium() as browser:
            page = await new_page(browser)
            await console_browser.sign_in(page, url, totp)
            await page.click("text=Find a child")
            await page.fill("input[name=nhs_number]", nhs)
            await page.select_option("select[name=purpose]", "subject_access_request")
            await page.click("text=Show the disclosure log")
            log = page.locator("#disclosure-log")
            await expect(log).to_contain_text(f"opened by {TEAM_USER}")
            await expect(log).to_contain_text(f"opened by {HUB_USER}")
            await expect(log).to_contain_text(referral_id)
            # The outcome names the child by the NHS number the referral carried.
            await expect(log).to_contain_text(outcomes[0][0])
            await shot(page, "7-console-disclosure-log", full_page=False)
