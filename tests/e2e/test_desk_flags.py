"""The flag service end to end: a scripted month of contacts through the real worker to the
co-ordinating team, flags raised by ``accord desk flags`` on real Kafka, exactly those an
independent reading of the rules derives (the household rule's too: two siblings share an
address, and an incident naming one flags the other); killed mid-window and restarted,
nothing is lost and nothing doubled."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from broker.desk import child_key, desk_linkage_key
from broker.devkafka import EmbeddedKafka
from broker.events import parse_event
from broker.keys import FileKeyStore
from broker.policy import Policy, load_bundle
from broker.provision import provision
from broker.sdk import Publisher
from broker.synthetic import SyntheticFamilies
from broker.topics import deliver, desk_flags, desk_flags_internal
from tests.e2e.worker_proc import POLICIES, WorkerProcess, keystore_for
from tests.kafka_helpers import kafka_env, read_to_end, settings_as

TEAM = "sandwell-coord"
DAY = timedelta(days=1)
# The project's flags.yaml, restated: (id, window, condition over the window's records).
RULES: tuple[tuple[str, timedelta, Any], ...] = (
    ("multi-agency", 90 * DAY,
     lambda w: len({e["sender"] for e in w}) >= 2 and len(w) >= 3),
    ("domestic-abuse-repeat", 30 * DAY,
     lambda w: any("domestic_abuse" in e["categories"] for e in w) and len(w) >= 2),
    ("need-level-4", 1 * DAY, lambda w: max(e["need_level"] for e in w) >= 4),
)  # fmt: skip
# (id, window, condition over the household's records in the window and their children).
HOUSEHOLD_RULES: tuple[tuple[str, timedelta, Any], ...] = (
    ("household-domestic-abuse", 30 * DAY,
     lambda w, kids: any("domestic_abuse" in e["categories"] for e in w) and len(kids) >= 2),
)  # fmt: skip
SENDERS = (
    ("wmp", "police.domestic_incident"),
    ("wmp", "police.child_concern"),
    ("swbh", "health.ae_attendance"),
    ("hv-sandwell", "health.health_visitor_concern"),
    ("school-146201", "education.welfare_concern"),
)


def _month(seed: int = 15) -> tuple[list[dict[str, Any]], list[str]]:
    """October 2026 for five Tipton children (one sibling pair), in occurred_at order."""
    fam = SyntheticFamilies(seed=seed)
    kids = []
    for i in range(4):
        family = fam.faker.last_name()
        kids.append(fam.subject("child", family_name=family, postcode=fam.postcode(("DY4",))))
        if i == 0:  # a sibling at the same address
            kids.append(dict(fam.subject("child", family_name=family), postcode=kids[0]["postcode"],
                             address=kids[0]["address"]))  # fmt: skip
    start = datetime(2026, 10, 1, 7, tzinfo=UTC)
    events = []
    at = start
    for _ in range(34):
        at += timedelta(hours=fam.rng.randrange(6, 40))
        sender, etype = fam.rng.choice(SENDERS)
        who = fam.rng.sample(kids, k=fam.rng.choice((1, 1, 1, 2)))
        need = fam.rng.choice((2, 2, 3, 3, 3, 4))
        cats = ["domestic_abuse"] if etype == "police.domestic_incident" else []
        concern = not sender.startswith("wmp")  # health and schools: a justified concern
        ev = fam.event(etype, sender, subjects=who, need_level=need, occurred_at=at,
                       categories=cats, safeguarding={"concern": concern, "justification":
                       "visible injury reported" if concern else None})  # fmt: skip
        events.append(ev)
    # Then the police at the siblings' address twice (the police share the address): a
    # domestic incident about one, days later a concern about the other.
    for days, etype, sibling in ((2, "police.domestic_incident", kids[0]),
                                 (5, "police.child_concern", kids[1])):  # fmt: skip
        at += timedelta(days=days)
        cats = ["domestic_abuse"] if etype == "police.domestic_incident" else []
        events.append(fam.event(etype, "wmp", subjects=[sibling], need_level=2, occurred_at=at,
                                categories=cats))  # fmt: skip
    return events, [k["nhs_number"] for k in kids]


def _expected(
    events: list[dict[str, Any]], addressed: set[str]
) -> list[tuple[str, str, tuple[str, ...]]]:
    """The brief's semantics for records arriving in occurred_at order; ``addressed``: the
    records whose view, as the team receives it, carries the children's address."""
    seen: dict[str, list[dict[str, Any]]] = {}
    placed: dict[str, str] = {}
    homes: dict[str, list[tuple[dict[str, Any], set[str]]]] = {}
    fired: dict[tuple[str, str], list[datetime]] = {}
    out = []
    for ev in events:
        t = datetime.fromisoformat(ev["occurred_at"])
        kids = {s["nhs_number"]: s["address"] + s["postcode"]
                for s in ev["subjects"] if s["role"] == "child"}  # fmt: skip
        for nhs, address in kids.items():
            mine = seen.setdefault(nhs, [])
            mine.append(ev)
            for rule, width, holds in RULES:
                window = [
                    e for e in mine if t - width < datetime.fromisoformat(e["occurred_at"]) <= t
                ]
                times = fired.setdefault((rule, nhs), [])
                if holds(window) and not any(t - width < f <= t for f in times):
                    times.append(t)
                    out.append((rule, nhs, tuple(e["event_id"] for e in window)))
            if ev["event_id"] in addressed:
                placed[nhs] = address
            if nhs not in placed:
                continue
            home = homes.setdefault(placed[nhs], [])
            there = next((about for e, about in home if e is ev), None)
            if there is None:
                there = set()
                home.append((ev, there))
            mates = {n for n, a in kids.items() if a == address}
            there |= (mates if ev["event_id"] in addressed else set()) | {nhs}
            for rule, width, holds in HOUSEHOLD_RULES:
                window = [(e, about) for e, about in home
                          if t - width < datetime.fromisoformat(e["occurred_at"]) <= t]  # fmt: skip
                about = {n for _, a in window for n in a}
                times = fired.setdefault((rule, nhs + placed[nhs]), [])
                if holds([e for e, _ in window], about) and not any(
                    t - width < f <= t for f in times
                ):
                    times.append(t)
                    ids = [e["event_id"] for e, _ in window]
                    ids += [e["event_id"] for e in mine if e["event_id"] not in ids and
                            t - width < datetime.fromisoformat(e["occurred_at"]) <= t]  # fmt: skip
                    ids.sort(key=[e["event_id"] for e in events].index)
                    out.append((rule, nhs, tuple(ids)))
                    # At once for each sibling: a child with a record in this household's
                    # window, still living here (its latest address), not in this record.
                    for other in sorted(about - set(kids)):
                        times = fired.setdefault((rule, other + placed[nhs]), [])
                        if placed.get(other) != placed[nhs] or any(
                            t - width < f <= t for f in times
                        ):
                            continue
                        times.append(t)
                        house_ids = [e["event_id"] for e, _ in window]
                        house_ids.sort(key=[e["event_id"] for e in events].index)
                        out.append((rule, other, tuple(house_ids)))
    return out


async def window_ids(bootstrap: str, child: str) -> list[str] | None:
    """The event ids the flag service holds for ``child`` (its window table's changelog,
    last write under the child's key), or None before its first."""
    wanted = json.dumps(child).encode()  # faust writes a table's keys as JSON
    writes = [m for m in await read_to_end(bootstrap, desk_flags_internal(TEAM)[0],
                                           isolation="read_uncommitted")
              if m.key == wanted and m.value is not None]  # fmt: skip
    if not writes:
        return None
    return [rec[2] for rec in json.loads(writes[-1].value)["recs"]]  # (t, seq, id, …)


def started_worker_and_flags(
    home: Path, keys: FileKeyStore, bootstrap: str
) -> tuple[WorkerProcess, FlagService]:
    """The worker and the team's flag service, both on one partition (each step reaches the
    team in the order it was sent), started."""
    worker = WorkerProcess(home, keys, bootstrap, POLICIES)
    worker.env["ACCORD_KAFKA__PARTITIONS"] = "1"
    service = FlagService(home, keys, bootstrap)
    worker.start()
    service.start()
    return worker, service


class FlagService:
    """``python -m broker desk flags --as sandwell-coord``, logs to a file."""

    def __init__(self, home: Path, keys: FileKeyStore, bootstrap: str) -> None:
        self.env = {
            **os.environ,
            "ACCORD_HOME": str(home),
            **kafka_env(bootstrap),
            "ACCORD_KAFKA__PARTITIONS": "1",
            "ACCORD_KEYSTORE__PATH": str(keys.path),
        }
        self.log = home / "flags.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "broker", "desk", "flags", "--as", TEAM,
                 "--policies", str(POLICIES)],
                env=self.env, stdout=fh, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


async def _flags(bootstrap: str) -> list[tuple[str, dict[str, Any]]]:
    msgs = await read_to_end(bootstrap, desk_flags(TEAM))
    return [(m.key.decode(), json.loads(m.value)) for m in msgs]


async def _wait_delivered(bootstrap: str, count: int, worker: WorkerProcess) -> None:
    deadline = time.monotonic() + 90
    while len(await read_to_end(bootstrap, deliver(TEAM))) < count:
        assert worker.alive(), worker.tail()
        assert time.monotonic() < deadline, f"deliveries stuck below {count}"
        await asyncio.sleep(0.2)


async def _wait_flags(bootstrap: str, count: int, service: FlagService, within: float) -> bool:
    """True once ``count`` flags are on the topic; False after ``within`` seconds (the
    caller's check then shows which are missing)."""
    deadline = time.monotonic() + within
    while len(await _flags(bootstrap)) < count:
        assert service.alive(), service.tail()
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.5)
    return True


async def test_a_month_of_contacts_raises_exactly_the_rules_flags_across_a_crash(
    isolated_kafka: EmbeddedKafka, tmp_path: Path
) -> None:
    bootstrap = isolated_kafka.bootstrap
    policy: Policy = load_bundle(POLICIES)
    every_rule = [*RULES, *HOUSEHOLD_RULES]
    assert [(r.id, r.window) for r in policy.flag_rules] == [(r, w) for r, w, _ in every_rule]
    admin = settings_as(bootstrap, "admin")
    assert admin.credentials_dir is not None
    # One partition everywhere: the team receives records in the order they were sent.
    provision(policy, admin.model_copy(update={"partitions": 1}),
              clients_dir=admin.credentials_dir)  # fmt: skip
    keys = keystore_for(policy, tmp_path / "keys")
    events, children = _month()
    now = datetime.now(UTC)
    addressed = set()
    for ev in events:  # every scripted record reaches the team
        decisions = policy.decide(parse_event(ev, now=now), [], at=now)
        [mine] = [d for d in decisions if d.recipient == TEAM and d.shares]
        if {"subject.address", "subject.postcode"} <= set(mine.fields_shared):
            addressed.add(ev["event_id"])
    assert 0 < len(addressed) < len(events)  # police share the address; others do not
    expected = _expected(events, addressed)
    rules_seen = Counter(rule for rule, _, _ in expected)
    assert set(rules_seen) == {r for r, _, _ in every_rule}, rules_seen  # the script uses all

    worker, service = started_worker_and_flags(tmp_path, keys, bootstrap)
    try:
        first, second = 14, 24
        sent = 0

        async def send(upto: int) -> None:
            nonlocal sent
            while sent < upto:
                ev = events[sent]
                async with Publisher(ev["sender"], keys, settings_as(bootstrap, ev["sender"])) as p:
                    await p.publish(ev)
                sent += 1
                await _wait_delivered(bootstrap, sent, worker)

        await send(first)
        early = len(_expected(events[:first], addressed))
        assert await _wait_flags(bootstrap, early, service, within=180), service.tail()
        # Mid-window: two more records, and the service is killed while it handles them.
        await send(first + 2)
        service.kill()
        await send(second)  # delivered while the service is down
        service.start()
        await send(len(events))
        if await _wait_flags(bootstrap, len(expected), service, within=180):
            await asyncio.sleep(8)  # time for any duplicate or extra flag to show
        got = await _flags(bootstrap)
    finally:
        service.stop()
        worker.stop()

    _check(got, expected, children, events, desk_linkage_key(keys, party=TEAM), service.tail())
    _check_log(service.log.read_bytes())


def _check_log(log: bytes) -> None:
    """The service's log is JSON lines, its flags at info (no faust WARNING, no escapes)."""
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert all(isinstance(line, dict) and "level" in line for line in lines), log[:400]
    raised = [line for line in lines if line["event"] == "flags_raised"]
    assert raised
    assert {line["level"] for line in raised} == {"info"}


def _check(
    got: list[tuple[str, dict[str, Any]]],
    expected: list[tuple[str, str, tuple[str, ...]]],
    children: list[str],
    events: list[dict[str, Any]],
    secret: bytes,
    log: str,
) -> None:
    """Each flag once, exactly the expected ones, naming no person."""
    counts = Counter(key for key, _ in got)
    assert [k for k, n in counts.items() if n > 1] == [], "a flag was published twice"
    by_child = {child_key(secret, {"nhs_number": n}): n for n in children}
    raised = [(f["rule"], by_child[f["child"]], tuple(f["event_ids"])) for _, f in got]
    # Compared as (rule, child's place, events' places in the script): a failure reads.
    order = [ev["event_id"] for ev in events]

    def places(flags: list[tuple[str, str, tuple[str, ...]]]) -> list[tuple[str, int, list[int]]]:
        return sorted((r, children.index(c), [order.index(i) for i in ids]) for r, c, ids in flags)

    assert places(raised) == places(expected), log
    for key, flag in got:
        assert key == flag["flag_id"]
        assert flag["party"] == TEAM
        assert flag["trigger_event_id"] == flag["event_ids"][-1]
    text = json.dumps([f for _, f in got])
    assert not any(n in text for n in children)
    names = {s["family_name"] for ev in events for s in ev["subjects"]}
    assert not any(name in text for name in names)
    homes = {s[k] for ev in events for s in ev["subjects"] for k in ("address", "postcode")}
    assert not any(home in text for home in homes)
    assert any(f["household"] for _, f in got)  # household flags name a hash, not a place
