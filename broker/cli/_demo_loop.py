"""The demo's referral loop: the broker's half of the recipients' desk, scripted.

Once the synthetic agencies are publishing, an agency reports two concerns about one
synthetic child and the team's flag service (``_demo_flags``) flags the child; the
co-ordinating team records the family's consent to early help and refers the child; the
worker decides the referral under
the bundle's agreements; the COG for the child's town receives and opens it and sends its
outcome back, which the worker decides in turn and the co-ordinating team receives. Each
step is printed: who decided what, under which clause, and what came back (ids, parties,
clauses and field names only, never the family's details).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from broker.cli._demo_flags import flag_source, wait_for_flag, wait_until_held
from broker.cli._demo_view import shared_fields
from broker.config import EnvelopeSettings
from broker.desk import Flag, child_key
from broker.events import parse_consents, parse_event
from broker.kafka import KafkaClients
from broker.keys import FileKeyStore
from broker.policy import Policy, basis_words
from broker.sdk import Delivery, Publisher, Subscriber
from broker.synthetic import SyntheticFamilies

REFERRAL, OUTCOME = "coordination.referral", "coordination.referral_outcome"
# How long a step is expected to take: past it, the loop says the machine is slow and goes
# on listening, and the step is printed, and the story goes on, when it comes.
_WAIT_S = 30.0
# The flag step's two: the flag service starts beside the demo (faust takes some seconds, more
# on a busy machine) before it takes the first record.
_FLAG_WAIT_S = 60.0
# Each wait's end: a story that never ends would hold a demo run with --duration for ever.
_GIVE_UP_S = 300.0

T = TypeVar("T")

#: (recipient, event id) of each delivery the loop opens itself, added before the event is
#: published. The demo's printing subscribers read the same topics under their own group and
#: leave these unopened: two acks would put two views that never happened in the child's
#: disclosure log, a millisecond apart.
Scripted = set[tuple[str, str]]


def referral_parties(policy: Policy) -> tuple[str, str] | None:
    """(co-ordinating team, town district) for the first approved clause referring to hubs,
    the district the first hub that reports outcomes covers; None if the bundle has none."""
    teams = [s for a in policy.bundle.agreements if a.status == "approved"
             for c in a.clauses if REFERRAL in c.event_types for s in c.from_]  # fmt: skip
    reporting = [s for a in policy.bundle.agreements if a.status == "approved"
                 for c in a.clauses if OUTCOME in c.event_types for s in c.from_]  # fmt: skip
    parties = policy.bundle.parties
    for hub in reporting:
        party = parties.get(hub)
        if party is None or party.kind != "hub" or not party.localities or not teams:
            continue
        return teams[0], party.localities[0]
    return None


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def _patiently(
    wait: Callable[[float], Awaitable[T | None]],
    *,
    expected: float,
    slow: Callable[[], None],
) -> T | None:
    """``wait(seconds)``'s answer; when none comes within ``expected``, ``slow()`` is said
    and the wait goes on, up to ``_GIVE_UP_S`` in all. None: nothing came in that time."""
    found = await wait(expected)
    if found is None:
        slow()
        found = await wait(_GIVE_UP_S - expected)
    return found


async def _next_delivery(sub: Subscriber, event_id: str, by: str, within: float) -> Delivery | None:
    """Poll ``sub`` until the delivery of ``event_id`` (opened, as ``by``), or None after
    ``within`` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        for record in await sub.poll(0.5):
            m = record.message
            if isinstance(m, Delivery) and m.event_id == event_id:
                await record.opened(by=by, purpose=m.purpose)
                return m
    return None


async def _first(
    sub: Subscriber, event_id: str, *, by: str, say: Callable[[str], None]
) -> Delivery | None:
    """The delivery of ``event_id`` to ``sub``'s party, opened as ``by``; None (said) if it
    has not come when the loop gives up."""
    got = await _patiently(
        lambda within: _next_delivery(sub, event_id, by, within),
        expected=_WAIT_S,
        slow=lambda: say(
            f"referral loop: nothing yet for {event_id} after {_WAIT_S:g} s: this machine is "
            f"slow; still listening (up to {_GIVE_UP_S:g} s), and the story goes on when it "
            "arrives"
        ),
    )
    if got is None:
        say(f"referral loop: nothing arrived for {event_id} within {_GIVE_UP_S:g} s; the story "
            "stops here (the worker's metrics, printed above, show whether it is deciding: "
            "accord_decisions_total)")  # fmt: skip
    return got


async def _flagged(
    kafka: Callable[[str], KafkaClients],
    keys: Callable[[str], FileKeyStore],
    policy: Policy,
    *,
    team: str,
    child: dict[str, Any],
    linkage: bytes,
    fam: SyntheticFamilies,
    say: Callable[[str], None],
    envelope: EnvelopeSettings,
    status: Callable[[], str] | None = None,
) -> Flag | None:
    """An agency's two concerns about ``child``; the team's flag for the child, or None.
    ``status``: what the flag service is doing, said when it is slow."""
    source = flag_source(policy, team)
    key = child_key(linkage, child)
    if source is None or key is None:
        say(f"flags: no agency shares categories with {team} without consent; no flag step")
        return None
    agency, etype = source
    now = datetime.now(UTC)
    first, second = [
        fam.event(etype, agency, subjects=[child], need_level=3, occurred_at=now - ago,
                  categories=["domestic_abuse"])
        for ago in (timedelta(days=3), timedelta(hours=1))
    ]  # fmt: skip
    async with Publisher(agency, keys(agency), kafka(agency), envelope=envelope) as pub:
        await pub.publish(first)
        say(f"flags 1/3: {agency} reports a {etype} concern about a child, 3 days ago "
            f"({first['event_id']})")  # fmt: skip

        async def held(within: float) -> bool | None:
            return await wait_until_held(kafka(team), team, key, within=within) or None

        def slow(what: str) -> Callable[[], None]:
            return lambda: say(
                f"flags: {what} after {_FLAG_WAIT_S:g} s: this machine is slow; still waiting "
                f"(up to {_GIVE_UP_S:g} s), and the story goes on when it comes{_said(status)}"
            )

        not_yet = slow(f"{team}'s flag service has not taken the record")
        # In arrival order, as the desk's windows need (see _demo_flags).
        if not await _patiently(held, expected=_FLAG_WAIT_S, slow=not_yet):
            say(f"flags: {team}'s flag service did not take the record within {_GIVE_UP_S:g} s"
                f"{_said(status)}; referring without a flag")  # fmt: skip
            return None
        await pub.publish(second)
    say(f"flags 2/3: {team}'s flag service holds it; {agency} reports a second concern, "
        f"an hour ago ({second['event_id']})")  # fmt: skip
    flag = await _patiently(
        lambda within: wait_for_flag(kafka(team), team, key, within=within),
        expected=_FLAG_WAIT_S,
        slow=slow("no flag for the child yet"),
    )
    if flag is None:
        say(f"flags: no flag for the child within {_GIVE_UP_S:g} s{_said(status)}; "
            "referring anyway")  # fmt: skip
        return None
    say(
        f"flags 3/3: {team}'s flag service raised {flag.rule} ({flag.title}) over "
        f"{len(flag.event_ids)} record(s), flag {flag.flag_id}; a person decides: refer"
    )
    return flag


def _said(status: Callable[[], str] | None) -> str:
    return "" if status is None else f" ({status()})"


def _fields(got: Delivery, policy: Policy) -> str:
    """The fields shared, as the child's disclosure log lists them, apart from the record's
    own id, type, sender and time, which travel with every record (16 keys read as fields
    against the log's 9)."""
    fields = shared_fields(got, policy)
    return (
        f"the {len(fields)} fields shared ({', '.join(fields)}) and the record's id, type, "
        "sender and time"
    )


async def referral_loop(
    kafka: Callable[[str], KafkaClients],
    keys: Callable[[str], FileKeyStore],
    policy: Policy,
    *,
    say: Callable[[str], None],
    envelope: EnvelopeSettings,
    delay: float = 1.0,
    linkage: bytes | None = None,
    flag_status: Callable[[], str] | None = None,
    scripted: Scripted | None = None,
) -> None:
    """Run the scripted loop once, after ``delay`` seconds (the agencies' stream flowing);
    with the team's desk ``linkage`` key, the flag service's flag for the child first
    (``flag_status`` says what the service is doing, when it is slow). Every client seals
    with ``envelope``, the settings' (the demo's keystores are of its KEM). The deliveries
    the loop opens are added to ``scripted`` before they are sent."""
    scripted = set() if scripted is None else scripted
    found = referral_parties(policy)
    if found is None:
        say("referral loop: the bundle has no referral agreement; skipped")
        return
    team, district = found
    await asyncio.sleep(delay)
    fam = SyntheticFamilies(seed=uuid.uuid4().int & 0xFFFFFFFF)
    family = fam.faker.last_name()
    child = fam.subject("child", family_name=family, postcode=fam.postcode((district,)), age=7)
    now = datetime.now(UTC)
    consent = {"subject": {"nhs_number": child["nhs_number"]}, "state": "given",
               "purposes": ["early_help"], "recipients": ["kind:hub"], "recorded_by": team,
               "recorded_at": _iso(now - timedelta(minutes=1))}  # fmt: skip
    summary = "Contacts from two agencies in a month; family agreed."
    if linkage is not None:
        flag = await _flagged(
            kafka,
            keys,
            policy,
            team=team,
            child=child,
            linkage=linkage,
            fam=fam,
            say=say,
            envelope=envelope,
            status=flag_status,
        )
        if flag is not None:
            summary = f"Flagged: {flag.title}. Family agreed to early help."
    referral: dict[str, Any] = {
        "event_id": str(uuid.uuid4()), "type": REFERRAL, "sender": team,
        "occurred_at": _iso(now), "reference": f"DEMO-REF-{uuid.uuid4().hex[:6].upper()}",
        "need_level": 3, "summary": summary,
        "categories": ["domestic_abuse"], "subjects": [child],
    }  # fmt: skip
    rid = referral["event_id"]
    decisions = policy.decide(
        parse_event(referral, now=now), parse_consents([consent], now=now), at=now
    )
    hubs = [d.recipient for d in decisions if d.shares]
    if not hubs:
        say("referral loop: the policy shares the referral with no hub; skipped")
        return
    hub = hubs[0]
    say(f"referral loop 1/4: {team} records the family's consent (early_help, kind:hub) and "
        f"refers a child in {district} (referral {rid})")  # fmt: skip

    def subscriber(party: str) -> Subscriber:
        group = f"{party}.demo-loop"
        return Subscriber(
            party, keys(party), kafka(party), group, envelope=envelope, replay_memory=None
        )

    async with subscriber(hub) as at_hub, subscriber(team) as back:
        async with Publisher(team, keys(team), kafka(team), envelope=envelope) as pub:
            await pub.publish_consent(consent)
            scripted.add((hub, rid))
            await pub.publish(referral)
        got = await _first(at_hub, rid, by="duty-worker", say=say)
        if got is None:
            return
        basis = basis_words(got.lawful_basis) or "none"
        say(f"referral loop 2/4: the worker decided {got.outcome} to {hub} under "
            f"{', '.join(got.clauses)} (purpose {got.purpose}; lawful basis {basis}); "
            f"{hub} opened it: {_fields(got, policy)}")  # fmt: skip
        [person] = got.view["subjects"]
        outcome: dict[str, Any] = {
            "event_id": str(uuid.uuid4()), "type": OUTCOME, "sender": hub,
            "occurred_at": _iso(datetime.now(UTC)), "reference": rid,
            "outcome": "support_offered", "need_level": got.view.get("need_level", 3),
            "summary": "Family support worker allocated; first visit booked.",
            "subjects": [{k: v for k, v in person.items()
                          if k in ("role", "nhs_number", "given_name", "family_name", "dob")}],
        }  # fmt: skip
        scripted.add((team, outcome["event_id"]))
        async with Publisher(hub, keys(hub), kafka(hub), envelope=envelope) as pub:
            await pub.publish(outcome)
        # Sent here, not from a desk: a hub desk running beside the demo lists the referral
        # with no outcome sent from it, since a desk knows only the outcomes sent from it.
        say(f"referral loop 3/4: {hub} sends its outcome, support_offered "
            f"(outcome {outcome['event_id']}, reference = the referral; sent by this script, "
            f"so {hub}'s desk, if running, does not show it)")  # fmt: skip
        answer = await _first(back, outcome["event_id"], by="duty-worker", say=say)
        if answer is None:
            return
        say(f"referral loop 4/4: the worker decided {answer.outcome} to {team} under "
            f"{', '.join(answer.clauses)}; {team} received {answer.view.get('outcome')} for "
            f"referral {answer.view.get('reference')}. Both decisions and both openings are in "
            "the child's disclosure log")  # fmt: skip
