"""``accord demo``: the whole broker on the embedded default, with synthetic agencies.

Kafka (embedded), keys for every party, the worker, agencies publishing a steady stream of
realistic synthetic events through the SDK, and subscribers for the co-ordinating team and two
hubs printing what they receive (one line per record: outcome, clauses and a field count; no
opening acknowledged, as nobody reads them);
then, scripted, one referral to a hub and its outcome back, through the broker
(``_demo_loop``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import secrets
import uuid
from collections.abc import Awaitable, Callable, Container
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from prometheus_client import CollectorRegistry

from broker.cli._demo_console import demo_console as _console
from broker.cli._demo_flags import FlagServiceProcess
from broker.cli._demo_hints import DemoShell, with_port_hint
from broker.cli._demo_keys import demo_keystores
from broker.cli._demo_view import shared_fields
from broker.config import EnvelopeSettings, Settings, WorkerSettings
from broker.errors import AccordError, SendUnconfirmed, TransportError, UsageError
from broker.kafka import KafkaClients, client_settings
from broker.keys import FileKeyStore
from broker.pipeline import Worker, WorkerOptions, serve
from broker.policy import Policy, load_bundle
from broker.principals import Principal
from broker.provision import provision
from broker.sdk import Delivery, Publisher, Subscriber
from broker.synthetic import SyntheticFamilies

if TYPE_CHECKING:  # the loop's module is imported only where used, as referral_loop is
    from broker.cli._demo_loop import Scripted

_TARGET_DISTRICTS = ("DY4", "WS10", "B69", "B70", "B66", "WV10", "WV11", "WV14", "WV4", "B3")


def _routes(policy: Policy) -> dict[str, list[str]]:
    """Which contact event types each active agency can send under an in-force agreement.

    Referrals and outcomes are the desk's, not the agencies': the scripted referral loop
    (``_demo_loop``) sends those.
    """
    routes: dict[str, set[str]] = {}
    for agreement in policy.bundle.agreements:
        if agreement.status != "approved":
            continue
        for clause in agreement.clauses:
            if all(t.startswith("coordination.") for t in clause.event_types):
                continue
            for sender in clause.from_:
                party = policy.bundle.parties.get(sender)
                if party is not None and party.status == "active":
                    routes.setdefault(sender, set()).update(
                        t for t in clause.event_types if not t.startswith("coordination.")
                    )
    return {s: sorted(t) for s, t in sorted(routes.items())}


def _school_urns(policy: Policy) -> list[str]:
    return [p.urn for p in policy.bundle.parties.values() if p.kind == "school" and p.urn]


def _event(
    fam: SyntheticFamilies, rng: random.Random, sender: str, kind: str, urns: list[str]
) -> dict[str, Any]:
    family = fam.faker.last_name()
    postcode = fam.postcode(_TARGET_DISTRICTS)
    address = fam.faker.street_address().replace("\n", ", ")
    urn = rng.choice(urns) if urns and rng.random() < 0.7 else None
    occurred = datetime.now(UTC) - timedelta(minutes=rng.randrange(5, 600))
    # Ages on the day it occurred, which may be yesterday: a baby is born by then.
    child = fam.subject(
        "child",
        family_name=family,
        postcode=postcode,
        address=address,
        school_urn=urn,
        on=occurred.date(),
    )
    parent = fam.subject(
        "parent", family_name=family, postcode=postcode, address=address, on=occurred.date()
    )
    concern = rng.random() < 0.1
    return fam.event(
        kind,
        sender,
        subjects=[child, parent],
        need_level=rng.choice((1, 2, 2, 3, 3, 4)),
        occurred_at=occurred,
        categories=[
            rng.choice(
                [
                    "domestic_abuse",
                    "neglect",
                    "parental_mental_health",
                    "school_attendance",
                    "housing",
                ]
            )
        ],
        service=rng.choice([None, None, None, "sexual_health"])
        if kind.startswith("health.")
        else None,
        safeguarding={
            "concern": concern,
            "justification": "Practitioner judges that asking would put the child at risk."
            if concern
            else None,
        },
    )


async def _agencies(
    kafka: Callable[[str], KafkaClients],
    keys: Callable[[str], FileKeyStore],
    policy: Policy,
    *,
    rate: float,
    stop: asyncio.Event,
    say: Callable[[str], None],
    flowing: asyncio.Event,
    envelope: EnvelopeSettings,
) -> None:
    """Publish the synthetic stream until ``stop``; ``flowing`` is set after the first event."""
    seed = secrets.randbits(32)  # a fresh stream each run: event ids must never repeat
    rng = random.Random(seed)  # noqa: S311  # synthetic data, not cryptography
    fam = SyntheticFamilies(seed=seed, today=datetime.now(UTC).date())
    routes = _routes(policy)
    urns = _school_urns(policy)
    publishers = {s: Publisher(s, keys(s), kafka(s), envelope=envelope) for s in routes}
    coord = next(
        p for p, party in policy.bundle.parties.items() if party.kind == "coordinating_team"
    )
    consent_pub = Publisher(coord, keys(coord), kafka(coord), envelope=envelope)
    # Together: each is a TLS and SCRAM login, and a dozen one after another is a slow start.
    await asyncio.gather(*(pub.start() for pub in [*publishers.values(), consent_pub]))
    sent = 0
    try:
        while not stop.is_set():
            sender = rng.choice(list(routes))
            event = _event(fam, rng, sender, rng.choice(routes[sender]), urns)
            if rng.random() < 0.3:  # the family has agreed to early help from its hub
                consent = {
                    "subject": {"nhs_number": event["subjects"][0]["nhs_number"]},
                    "state": "given",
                    "purposes": ["early_help"],
                    "recipients": ["kind:hub"],
                    "recorded_by": coord,
                    "recorded_at": datetime.now(UTC).isoformat(),
                }
                if not await _consent_until_sent(consent_pub, consent, stop, say):
                    break
            if not await _until_sent(publishers[sender].publish, event, stop, say):
                break
            flowing.set()
            sent += 1
            if sent % 25 == 0:
                say(f"agencies: {sent} events published")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1 / rate)
    finally:
        for pub in [*publishers.values(), consent_pub]:
            await pub.stop()


#: The longest the synthetic agencies wait before trying a record Kafka did not take again.
_RETRY_MAX_S = 30.0


async def _until_sent(
    send: Callable[[dict[str, Any]], Awaitable[object]],
    record: dict[str, Any],
    stop: asyncio.Event,
    say: Callable[[str], None],
    *,
    first_wait: float = 1.0,
) -> bool:
    """Send ``record`` until Kafka takes it, as an agency should: the same record again, under
    its own id (an event's ``event_id``; a consent record's ``record_id``, bound into ``send``),
    so a copy Kafka had taken after all is refused as a replay. False if
    the demo stops first. A Kafka away for a while (a paused broker, a restart) used to end
    the whole demo, worker and console with it, at the agencies' first send given up on."""
    wait = first_wait
    while True:
        try:
            await send(record)
        except SendUnconfirmed as exc:
            # The SDK's "not sent again" is about itself; the demo, as an agency should, sends
            # the same record again, which a "trying it again" after it would contradict.
            say(
                f"agencies: {exc}; the demo, not the SDK, sends it again in {wait:g} s under "
                "the same id: if Kafka had it, that copy is refused as a replay"
            )
        except TransportError as exc:  # its message names topics and limits, never data
            say(f"agencies: {exc}; trying it again in {wait:g} s")
        else:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=wait)
        if stop.is_set():
            return False
        wait = min(wait * 2, _RETRY_MAX_S)


async def _consent_until_sent(
    pub: Publisher, consent: dict[str, Any], stop: asyncio.Event, say: Callable[[str], None]
) -> bool:
    """:func:`_until_sent` for a consent record, its id chosen once: tried again, it is the
    same record, filed once (a new id each try would file, and audit, a copy twice)."""
    send = functools.partial(pub.publish_consent, record_id=str(uuid.uuid4()))
    return await _until_sent(send, consent, stop, say)


async def _recipient(
    kafka: KafkaClients,
    keys: Callable[[str], FileKeyStore],
    party: str,
    *,
    stop: asyncio.Event,
    say: Callable[[str], None],
    envelope: EnvelopeSettings,
    policy: Policy,
    scripted: Container[tuple[str, str]] = frozenset(),
) -> None:
    """Print what ``party`` receives (outcome, clauses, the count of fields shared: as the
    child's disclosure log lists them, ``shared_fields``), opening nothing: nobody
    reads these lines, and an acknowledgement would put a person's reading of each record
    into its child's disclosure log. The referral loop's own (``scripted``) are opened by the
    loop, once, as a person at a desk would."""
    async with Subscriber(
        party, keys(party), kafka, group=f"{party}.demo", envelope=envelope
    ) as sub:
        while not stop.is_set():
            for record in await sub.poll(1.0):
                m = record.message
                if isinstance(m, Delivery):
                    line = (
                        f"→ {party:<22} {m.outcome:<16} {','.join(m.clauses):<22} "
                        f"{len(shared_fields(m, policy))} fields shared"
                    )
                    if (party, m.event_id) in scripted:
                        line += " (left for the referral loop to open)"
                    say(line)
                else:
                    n = len(m.event_ids)
                    say(f"→ {party:<22} consent withdrawn: stop processing {n} record(s)")


async def _loop(
    kafka: Callable[[str], KafkaClients],
    keys: Callable[[str], FileKeyStore],
    policy: Policy,
    say: Callable[[str], None],
    flowing: asyncio.Event,
    *,
    linkage: bytes | None,
    envelope: EnvelopeSettings,
    flag_service: FlagServiceProcess | None = None,
    scripted: Scripted | None = None,
) -> None:
    """The scripted referral loop, once the agencies' stream flows; a failure there is said,
    and the demo carries on. ``scripted``: shared with the printing subscribers."""
    from broker.cli._demo_loop import referral_loop

    await flowing.wait()
    try:
        await referral_loop(
            kafka, keys, policy, say=say, linkage=linkage, envelope=envelope,
            flag_status=None if flag_service is None else flag_service.status,
            scripted=scripted,
        )  # fmt: skip
    except AccordError as exc:
        say(f"referral loop stopped: {exc}")


async def _flag_service(
    settings: Settings, policy: Policy, say: Callable[[str], None], passphrase_file: Path | None
) -> tuple[FlagServiceProcess | None, bytes | None]:
    """The referring team's flag service, started (with the team's desk linkage key, made
    first, as enrolment makes it, so that the service reads it and the loop shares it);
    (None, None) if the bundle has none."""
    from broker.cli._demo_loop import referral_parties
    from broker.desk import desk_linkage_key

    found = referral_parties(policy)
    if found is None or not policy.flag_rules:
        return None, None
    team = found[0]
    linkage = desk_linkage_key(
        FileKeyStore(settings.keystore_path(team), settings.keystore_passphrase()),
        party=team,
        create=True,
    )
    service = FlagServiceProcess(settings, team, passphrase_file)
    await service.start()
    say(f"flag service for {team} started (accord desk flags; it logs the flags it raises and "
        f"any warning to {service.log})")  # fmt: skip
    # One per team: a second, started by hand, would share the demo's work (docs/desk.md).
    say(f"the demo runs {team}'s flag service itself: stop any 'accord desk flags --as {team}' "
        "you started by hand")  # fmt: skip
    return service, linkage


async def _watch(
    worker: asyncio.Task[None], parts: list[asyncio.Task[None]], say: Callable[[str], None]
) -> None:
    """Until the worker ends; the first part to fail ends the demo with its own error.

    Unwatched, a console whose port is taken, or a subscriber that cannot log in, would
    leave the demo running on without it, and saying nothing.
    """
    pending: set[asyncio.Task[None]] = {worker, *parts}
    while worker in pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        # Every failure in hand is retrieved, though only the first is raised: asyncio would
        # print the others as "Task exception was never retrieved" after the demo's one line.
        failed = [(t, e) for t in done if not t.cancelled() and (e := t.exception()) is not None]
        if failed:
            task, exc = failed[0]
            say(f"demo: {task.get_name()} failed; stopping")
            raise exc


# How long the demo waits for its parts, then its worker, to stop. With Kafka gone, a Kafka
# client's stop waits out its own request timeouts (a minute and more): the demo says so and
# goes on, since what was not committed is not lost (the worker redoes it next run).
_PARTS_STOP_S = 10.0
_WORKER_STOP_S = 20.0


async def _stopped(
    tasks: list[asyncio.Task[None]], *, within: float, say: Callable[[str], None]
) -> None:
    """Cancel ``tasks`` and wait up to ``within`` seconds for them to end."""
    for task in tasks:  # failed already (after the first failure ended the demo): retrieved
        if task.done() and not task.cancelled():
            task.exception()
    live = [t for t in tasks if not t.done()]
    for task in live:
        task.cancel()
    if not live:
        return
    _, late = await asyncio.wait(live, timeout=within)
    for task in late:
        say(f"demo: {task.get_name()} did not stop within {within:g} s (is Kafka down?); "
            "leaving it")  # fmt: skip
    for task in set(live) - late:  # retrieved, so asyncio does not log them as unretrieved
        if not task.cancelled():
            task.exception()


def _not_started(worker: asyncio.Task[None], metrics_port: int) -> None:
    """The worker's error, when it could not start: one line, from the CLI, naming
    --metrics-port when its port was taken."""
    try:
        worker.result()
    except UsageError as exc:
        raise with_port_hint(exc, metrics_port, "--metrics-port") from None


async def _start_worker(worker: Worker, metrics_port: int) -> tuple[asyncio.Task[None], int]:
    """The worker, serving, once started, and the port its metrics are on: the one bound,
    told before the worker starts, since --metrics-port 0 (which the busy-port error
    suggests) picks one and the 0 asked for is no address to print."""
    bound: list[int] = []
    task = asyncio.create_task(
        serve(worker, ops=WorkerSettings(metrics_port=metrics_port), listening=bound.append),
        name="the worker",
    )
    started = asyncio.create_task(worker.started.wait())
    await asyncio.wait({started, task}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        started.cancel()
        _not_started(task, metrics_port)
    return task, (bound or [metrics_port])[0]


async def run_demo(
    settings: Settings, *, duration: float | None, rate: float, metrics_port: int
) -> None:
    policy = load_bundle(settings.policies)
    # A keystore per party and service, each with only its own private keys, wired with a
    # directory the governance key signs: as separate organisations would have them.
    settings, passphrase_file = demo_keystores(settings, list(policy.bundle.parties))

    def keys(principal: str) -> FileKeyStore:
        return FileKeyStore(settings.keystore_path(principal), settings.keystore_passphrase())

    def kafka(principal: str) -> KafkaClients:
        return KafkaClients(client_settings(settings, principal))

    # As the admin, once: topics, a login per party and service, and the ACLs the bundle
    # gives; then every part of the demo logs in as itself, as separate organisations would.
    plan = provision(
        policy,
        client_settings(settings, Principal.ADMIN),
        clients_dir=settings.kafka_credentials_dir,
    )
    if plan:
        typer.echo(f"kafka provisioned for the bundle: {len(plan.rows())} changes")
    stop = asyncio.Event()
    worker = Worker(
        settings,
        WorkerOptions(policies=settings.policies, instance="demo", checkpoint_every=50),
        kafka=kafka(Principal.WORKER),
        registry=CollectorRegistry(),
    )
    worker_task, port = await _start_worker(worker, metrics_port)
    say = typer.echo
    say(f"worker running; metrics at http://127.0.0.1:{port}/metrics")
    flags, linkage = await _flag_service(settings, policy, say, passphrase_file)
    shell = DemoShell.for_demo(home=settings.home, policies=settings.policies,
                               passphrase_file=passphrase_file, kafka=settings.kafka)  # fmt: skip
    tasks = [
        asyncio.create_task(
            _console(settings, kafka(Principal.CONSOLE), policy, stop, say, shell=shell),
            name="the governance console",
        )
    ]
    hubs = [p for p, party in policy.bundle.parties.items() if party.kind == "hub"][:2]
    coord = [p for p, party in policy.bundle.parties.items() if party.kind == "coordinating_team"][
        :1
    ]
    # scripted: the loop's own deliveries, which the printing subscribers leave unopened.
    flowing, scripted = asyncio.Event(), set[tuple[str, str]]()
    tasks += [
        asyncio.create_task(
            _agencies(
                kafka,
                keys,
                policy,
                rate=rate,
                stop=stop,
                say=say,
                flowing=flowing,
                envelope=settings.envelope,
            ),
            name="the synthetic agencies",
        )
    ]
    tasks += [
        asyncio.create_task(
            _recipient(
                kafka(p),
                keys,
                p,
                stop=stop,
                say=say,
                envelope=settings.envelope,
                policy=policy,
                scripted=scripted,
            ),
            name=f"{p}'s subscriber",
        )
        for p in coord + hubs
    ]
    story = asyncio.create_task(
        _loop(
            kafka,
            keys,
            policy,
            say,
            flowing,
            linkage=linkage,
            envelope=settings.envelope,
            flag_service=flags,
            scripted=scripted,
        ),
        name="the referral loop",
    )
    tasks += [story]
    say(f"agencies publishing ~{rate:g} events/s; printing what {', '.join(coord + hubs)} receive")
    watch = asyncio.create_task(_watch(worker_task, tasks, say))
    try:
        if duration is None:
            await watch
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(watch), timeout=duration)
            if not story.done() and not watch.done():
                # A busy machine can slow the story past --duration; it ends on its own
                # (each of its waits is bounded), so it is not cut off half told.
                say("demo: the referral loop is still running; letting it finish")
                await asyncio.wait({story, watch}, return_when=asyncio.FIRST_COMPLETED)
            if watch.done():
                watch.result()  # a part that failed meanwhile ends the demo with its error
    finally:
        stop.set()
        try:
            await _stopped([*tasks, watch], within=_PARTS_STOP_S, say=say)
            await _stopped([worker_task], within=_WORKER_STOP_S, say=say)
        finally:
            # Even if the stop above is itself cut short (a second Ctrl-C): the flag service
            # is a child process, and must not outlive the demo.
            if flags is not None:
                await flags.stop()
