"""The demo's scripted referral loop picks its parties from the bundle, and the synthetic
agencies leave referral and outcome types to it (the loop itself runs in test_install.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from broker.cli import _demo_loop
from broker.cli._demo_flags import flag_source
from broker.cli._demo_loop import referral_parties
from broker.cli._demo_run import _routes
from broker.config import EnvelopeSettings
from broker.desk import Flag
from broker.policy import load_bundle
from broker.sdk import Delivery
from broker.synthetic import SyntheticFamilies

POLICIES = Path(__file__).resolve().parents[3] / "policies"


def test_the_synthetic_agencies_never_send_referrals_or_outcomes() -> None:
    routes = _routes(load_bundle(POLICIES))
    assert "wmp" in routes
    assert "police.domestic_incident" in routes["wmp"]
    assert not [t for types in routes.values() for t in types if t.startswith("coordination.")]
    assert "cog-tipton" not in routes  # a hub publishes only outcomes: the loop's


def test_the_loop_refers_from_the_referring_team_to_a_district_of_a_reporting_hub() -> None:
    assert referral_parties(load_bundle(POLICIES)) == ("sandwell-coord", "DY4")


def test_the_flag_step_reports_as_an_agency_sharing_categories_with_the_team_unconsented() -> None:
    """Its two concerns reach the team without consent, categories included, so a flag
    rule on domestic abuse can see them."""
    policy = load_bundle(POLICIES)
    agency, etype = flag_source(policy, "sandwell-coord") or ("", "")
    clauses = [c for a in policy.bundle.agreements for c in a.clauses
               if agency in c.from_ and etype in c.event_types
               and "sandwell-coord" in c.to]  # fmt: skip
    assert clauses
    assert all(c.consent == "not_required" and "event.categories" in c.share for c in clauses)
    # A recipient no unconsented clause shares categories with: no flag step.
    assert flag_source(policy, "cog-tipton") is None


class _Story:
    """The flag step's Kafka edges, faked: what was published and waited for, in order.
    ``held``: what each wait for the flag service to hold the first concern answers."""

    def __init__(self, *, held: bool | list[bool]) -> None:
        self.held = held if isinstance(held, list) else [held] * 2
        self.steps: list[str] = []
        self.said: list[str] = []

    def publisher(self, *_args: object, **_kwargs: object) -> _Story:
        return self

    async def __aenter__(self) -> _Story:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        return None

    async def publish(self, event: dict[str, Any]) -> None:
        self.steps.append(f"publish {event['occurred_at']}")

    async def wait_until_held(self, *_args: object, within: float) -> bool:
        assert within > 0  # every wait is bounded
        self.steps.append("held?")
        return self.held.pop(0)

    async def wait_for_flag(self, _kafka: object, team: str, child: str, *, within: float) -> Flag:
        assert within > 0
        self.steps.append("flag?")
        now = datetime.now(UTC)
        return Flag(flag_id="f" * 32, party=team, rule="domestic-abuse-repeat", title="t",
                    child=child, event_ids=("a", "b"), trigger_event_id="b", raised_at=now,
                    window_seconds=30 * 86400)  # fmt: skip


def _run_flag_step(monkeypatch: pytest.MonkeyPatch, story: _Story) -> Flag | None:
    monkeypatch.setattr(_demo_loop, "Publisher", story.publisher)
    monkeypatch.setattr(_demo_loop, "wait_until_held", story.wait_until_held)
    monkeypatch.setattr(_demo_loop, "wait_for_flag", story.wait_for_flag)
    fam = SyntheticFamilies(seed=3)
    child = fam.subject("child", postcode="DY4 7AA", age=7)
    return asyncio.run(
        _demo_loop._flagged(
            lambda _p: None,  # type: ignore[arg-type,return-value]  # the fakes ignore it
            lambda _p: None,  # type: ignore[arg-type,return-value]
            load_bundle(POLICIES), team="sandwell-coord", child=child,
            linkage=b"k" * 32, fam=fam, say=story.said.append, envelope=EnvelopeSettings(),
            status=lambda: "the flag service is still running; it has logged nothing yet",
        )
    )  # fmt: skip


def test_the_second_concern_is_sent_only_once_the_flag_service_holds_the_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sent back to back, the two could reach the desk newest first (random partitions) and
    then neither's window holds the other: no flag."""
    story = _Story(held=True)
    flag = _run_flag_step(monkeypatch, story)
    assert flag is not None
    assert [s.split()[0] for s in story.steps] == ["publish", "held?", "publish", "flag?"]
    first, second = (s.split()[1] for s in story.steps if s.startswith("publish"))
    assert first < second  # the older concern first
    assert [line.split(":")[0] for line in story.said] == ["flags 1/3", "flags 2/3", "flags 3/3"]


def test_a_flag_service_that_never_takes_the_first_concern_gets_no_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    story = _Story(held=False)
    assert _run_flag_step(monkeypatch, story) is None
    assert story.steps == [story.steps[0], "held?", "held?"]  # patient, then gives up
    assert "did not take the record within 300 s" in story.said[-1]
    # What to look at, never an empty log to read.
    assert "it has logged nothing yet" in story.said[-1]


def test_a_slow_flag_service_is_waited_for_and_the_story_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A slow first run: past the expected time the loop says the machine is slow, goes on
    waiting, and tells the rest of the story when the service catches up."""
    story = _Story(held=[False, True])
    flag = _run_flag_step(monkeypatch, story)
    assert flag is not None
    assert [s.split()[0] for s in story.steps] == ["publish", "held?", "held?", "publish", "flag?"]
    assert [line.split(":")[0] for line in story.said] == [
        "flags 1/3", "flags", "flags 2/3", "flags 3/3"
    ]  # fmt: skip
    assert "this machine is slow; still waiting" in story.said[1]


def test_patiently_says_slow_once_and_keeps_waiting() -> None:
    answers: list[str | None] = [None, "late"]
    waits: list[float] = []
    slow: list[str] = []

    async def wait(within: float) -> str | None:
        waits.append(within)
        return answers.pop(0)

    got = asyncio.run(_demo_loop._patiently(wait, expected=30, slow=lambda: slow.append("slow")))
    assert (got, slow) == ("late", ["slow"])
    assert waits == [30, _demo_loop._GIVE_UP_S - 30]  # bounded in all

    answers[:] = ["on time"]
    got = asyncio.run(_demo_loop._patiently(wait, expected=30, slow=lambda: slow.append("slow")))
    assert (got, slow) == ("on time", ["slow"])


class _Record:
    def __init__(self, message: Delivery, broker: _Broker) -> None:
        self.message = message
        self.broker = broker

    async def opened(self, *, by: str, purpose: str) -> None:
        self.broker.opened.append((self.message.recipient, self.message.event_id, by, purpose))


class _Broker:
    """The loop's Kafka, faked: whatever is published is delivered to the hub and the team
    (whichever did not send it), ``late`` seconds after it was published, to each of their
    subscribers (each reads the whole topic, as each consumer group does)."""

    def __init__(self, late: float) -> None:
        self.late = late
        self.inbox: dict[str, list[tuple[float, Delivery]]] = {}
        self.opened: list[tuple[str, str, str, str]] = []  # (recipient, event id, by, purpose)

    def publisher(self, _party: str, *_a: object, **_k: object) -> _Sender:
        return _Sender(self)

    def subscriber(self, party: str, *_a: object, **_k: object) -> _Receiver:
        return _Receiver(self, party)

    def publish(self, event: dict[str, Any]) -> None:
        at = asyncio.get_running_loop().time() + self.late
        for to in ("cog-tipton", "sandwell-coord"):
            if to != event["sender"]:
                self.inbox.setdefault(to, []).append((at, _delivered(event, to)))


class _Sender:
    def __init__(self, broker: _Broker) -> None:
        self.broker = broker

    async def __aenter__(self) -> _Sender:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        return None

    async def publish_consent(self, _consent: dict[str, Any]) -> None:
        return None

    async def publish(self, event: dict[str, Any]) -> None:
        self.broker.publish(event)


class _Receiver(_Sender):
    def __init__(self, broker: _Broker, party: str) -> None:
        super().__init__(broker)
        self.party = party
        self.read = 0  # this subscriber's position on its party's topic

    async def __aenter__(self) -> _Receiver:
        return self

    async def poll(self, wait_s: float) -> list[_Record]:
        await asyncio.sleep(wait_s / 10)
        now = asyncio.get_running_loop().time()
        inbox = self.broker.inbox.get(self.party, [])
        due = []
        while self.read < len(inbox) and inbox[self.read][0] <= now:
            due.append(inbox[self.read][1])
            self.read += 1
        return [_Record(d, self.broker) for d in due]


def _delivered(event: dict[str, Any], to: str) -> Delivery:
    return Delivery.model_validate({
        "kind": "delivery", "event_id": event["event_id"], "recipient": to,
        "outcome": "shared", "clauses": ["c"], "agreements": ["a"], "purpose": "early_help",
        "lawful_basis": {"article6": "public_task", "article9": "explicit_consent"},
        "policy_version": "sha256:x",
        "decided_at": "2026-11-21T22:40:00Z", "view": event,
    })  # fmt: skip


def test_a_late_delivery_is_waited_for_and_the_story_is_told_to_its_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The referral reaches the hub after the expected wait: the loop says the machine is
    slow, and prints steps 2/4 to 4/4 when it comes, rather than stopping at 1/4."""
    policy = load_bundle(POLICIES)
    broker = _Broker(late=0.6)
    monkeypatch.setattr(_demo_loop, "Publisher", broker.publisher)
    monkeypatch.setattr(_demo_loop, "Subscriber", broker.subscriber)
    monkeypatch.setattr(_demo_loop, "_WAIT_S", 0.3)
    said: list[str] = []
    asyncio.run(
        _demo_loop.referral_loop(
            lambda _p: None,  # type: ignore[arg-type,return-value]  # the fakes ignore it
            lambda _p: None,  # type: ignore[arg-type,return-value]
            policy, say=said.append, envelope=EnvelopeSettings(), delay=0,
        )
    )  # fmt: skip
    steps = [line.split(":")[0] for line in said]
    assert steps == [
        "referral loop 1/4", "referral loop", "referral loop 2/4", "referral loop 3/4",
        "referral loop", "referral loop 4/4",
    ]  # fmt: skip
    assert "this machine is slow; still listening" in said[1]


def test_the_story_names_the_referral_s_lawful_basis_in_words_not_codes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As every page and report does (broker.policy.basis_words), not as JSON's codes."""
    broker = _Broker(late=0)
    monkeypatch.setattr(_demo_loop, "Publisher", broker.publisher)
    monkeypatch.setattr(_demo_loop, "Subscriber", broker.subscriber)
    said: list[str] = []
    asyncio.run(
        _demo_loop.referral_loop(
            lambda _p: None,  # type: ignore[arg-type,return-value]  # the fakes ignore it
            lambda _p: None,  # type: ignore[arg-type,return-value]
            load_bundle(POLICIES), say=said.append, envelope=EnvelopeSettings(), delay=0,
        )
    )  # fmt: skip
    [decided] = [line for line in said if line.startswith("referral loop 2/4")]
    assert (
        "(purpose early_help; lawful basis Art 6: public task, Art 6(1)(e); "
        "Art 9: explicit consent, Art 9(2)(a)); cog-tipton opened it"
    ) in decided
    assert "public_task" not in decided
    # The fields shared, counted as the disclosure log lists them, apart from the metadata.
    assert "fields shared (subject.name, subject.dob," in decided
    assert decided.endswith("and the record's id, type, sender and time")
    assert "explicit_consent" not in decided


def test_only_the_scripted_deliveries_are_opened_once_beside_the_demo_s_printing_subscribers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The demo's printers read the hub's and the team's topics too: they print the loop's
    referral and outcome and leave them to the loop to open (opened twice, the child's
    disclosure log showed two views a millisecond apart), and open nothing else: nobody reads
    what they print (they acknowledged every other delivery as opened by duty-worker, and the
    child's disclosure log said a person had read everything)."""
    from broker.cli import _demo_run

    policy = load_bundle(POLICIES)
    broker = _Broker(late=0)
    monkeypatch.setattr(_demo_loop, "Publisher", broker.publisher)
    monkeypatch.setattr(_demo_loop, "Subscriber", broker.subscriber)
    monkeypatch.setattr(_demo_run, "Subscriber", broker.subscriber)
    said: list[str] = []
    scripted: _demo_loop.Scripted = set()
    known: list[set[tuple[str, str]]] = []  # what the printers would skip, as each is sent
    publish = broker.publish

    def publishing(event: dict[str, Any]) -> None:
        known.append(set(scripted))
        publish(event)

    monkeypatch.setattr(broker, "publish", publishing)

    async def demo() -> None:
        stop, printed_all = asyncio.Event(), asyncio.Event()

        def say(line: str) -> None:
            said.append(line)
            if sum(s.startswith("→") for s in said) == 4:
                printed_all.set()

        printers = [
            asyncio.create_task(
                _demo_run._recipient(
                    None,  # type: ignore[arg-type]  # the fakes ignore it
                    lambda _p: None,  # type: ignore[arg-type,return-value]
                    party, stop=stop, say=say, envelope=EnvelopeSettings(), policy=policy,
                    scripted=scripted,
                )
            )
            for party in ("cog-tipton", "sandwell-coord")
        ]  # fmt: skip
        broker.publish({"event_id": "agency-1", "sender": "wmp"})  # not the loop's
        await _demo_loop.referral_loop(
            lambda _p: None,  # type: ignore[arg-type,return-value]
            lambda _p: None,  # type: ignore[arg-type,return-value]
            policy, say=say, envelope=EnvelopeSettings(), delay=0, scripted=scripted,
        )  # fmt: skip
        # The printers poll on their own clock, later than the loop's on a loaded machine.
        await asyncio.wait_for(printed_all.wait(), 10)
        stop.set()
        await asyncio.gather(*printers)

    asyncio.run(demo())
    # The loop's own last line; a printer's line may come after it.
    assert [line for line in said if line.startswith("referral loop")][-1].startswith(
        "referral loop 4/4"
    )
    rid, oid = (broker.inbox[p][-1][1].event_id for p in ("cog-tipton", "sandwell-coord"))
    assert scripted == {("cog-tipton", rid), ("sandwell-coord", oid)}
    # Known before it is sent: a printer could otherwise read it first.
    assert known[1:] == [{("cog-tipton", rid)}, scripted]
    assert sorted((to, eid, by) for to, eid, by, _ in broker.opened) == sorted([
        ("cog-tipton", rid, "duty-worker"), ("sandwell-coord", oid, "duty-worker"),
    ])  # fmt: skip
    printed = [line for line in said if line.startswith("→")]
    assert len(printed) == 4
    assert sum(line.endswith("(left for the referral loop to open)") for line in printed) == 2


def test_a_slow_flag_service_s_status_names_its_log_only_when_it_has_something(
    tmp_path: Path,
) -> None:
    """Pointing at an empty log helps nobody: the service logs only flags and warnings."""
    from types import SimpleNamespace

    from broker.cli._demo_flags import FlagServiceProcess
    from broker.config import Settings

    service = FlagServiceProcess(Settings(home=tmp_path), "sandwell-coord")
    service.proc = SimpleNamespace(returncode=None)  # type: ignore[assignment]
    service.log.parent.mkdir(parents=True)
    service.log.write_text("")
    assert service.status() == "the flag service is still running; it has logged nothing yet"
    service.log.write_text('{"event": "flags_record_skipped"}\n')
    assert service.status() == f"the flag service is still running; its log: {service.log}"
    service.proc = SimpleNamespace(returncode=1)  # type: ignore[assignment]
    assert service.status().startswith("the flag service has exited (status 1)")
