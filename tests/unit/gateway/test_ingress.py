"""A gateway whose Kafka login may not write its party's ingress topic does not start; one
that loses the grant while running says not ready until Kafka lets it write again."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import SecretStr

from broker.config import GatewaySettings, KafkaSettings, Settings
from broker.errors import ConfigError
from broker.gateway import GatewayRun, run_gateway
from broker.gateway._ingress import FIRST_BACKOFF, MAX_BACKOFF, IngressWrite
from broker.keys import FileKeyStore
from broker.topics import ingress
from tests.unit.gateway.conftest import TOKEN, X25519, FakeKafka, Gateway

PASSWORD = "never-in-a-message-7Qx"


class SeeingOnly(FakeKafka):
    """Kafka that lets this login see ``seen`` only (as swbh's login sees swbh's topic)."""

    def __init__(self, *seen: str) -> None:
        super().__init__()
        self.seen = seen
        self.asked: list[str] = []

    async def may_describe(self, topic: str, timeout_ms: int = 3000) -> bool | None:  # noqa: ARG002
        self.asked.append(topic)
        return topic in self.seen


def _logged_in_as(kafka: FakeKafka, username: str) -> FakeKafka:
    """``kafka`` with a SCRAM login named ``username`` (as a client file or the env gives)."""
    kafka.settings = KafkaSettings(bootstrap="127.0.0.1:1", username=username,
                                   password=SecretStr(PASSWORD))  # fmt: skip
    return kafka


async def _run(tmp_path: Any, keys: FileKeyStore, kafka: FakeKafka) -> list[GatewayRun]:
    settings = Settings(home=tmp_path, envelope=X25519,
                        gateway=GatewaySettings(port=0, token=SecretStr(TOKEN)))  # fmt: skip
    runs: list[GatewayRun] = []
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_gateway(settings, "wmp", keys, kafka, started=runs.append, stop=stop)
    )
    for _ in range(100):
        if runs or task.done():
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 15)  # raises what stopped the start
    return runs


async def test_another_partys_login_stops_the_start_naming_the_party_and_topic(
    tmp_path: Any, agency_keys: FileKeyStore
) -> None:
    kafka = SeeingOnly(ingress("swbh"))
    with pytest.raises(ConfigError) as err:
        await _run(tmp_path, agency_keys, kafka)
    message = str(err.value)
    assert "\n" not in message
    assert f"does not let this gateway's login see {ingress('wmp')}, so not write it" in message
    assert "the gateway of wmp needs wmp's own Kafka login" in message
    assert kafka.asked == [ingress("wmp")]


async def test_the_partys_own_login_starts(tmp_path: Any, agency_keys: FileKeyStore) -> None:
    [run] = await _run(tmp_path, agency_keys, SeeingOnly(ingress("wmp")))
    assert run.topic == ingress("wmp")


async def test_kafka_unable_to_tell_leaves_the_write_to_kafkas_acls(
    tmp_path: Any, agency_keys: FileKeyStore
) -> None:
    class Silent(FakeKafka):
        async def may_describe(self, topic: str, timeout_ms: int = 3000) -> bool | None:  # noqa: ARG002
            return None

    assert len(await _run(tmp_path, agency_keys, Silent())) == 1


async def test_a_refused_write_is_unready_until_kafka_lets_the_login_see_the_topic_again() -> None:
    """Else a load balancer that stops sending on "not ready" would keep it so for good."""
    ingress_write, answers = IngressWrite(), [False, True]

    async def probe() -> bool | None:
        return answers.pop(0) if answers else True

    watch = asyncio.create_task(ingress_write.watch(probe, 0.01))
    try:
        ingress_write.refused(ingress("wmp"))
        assert not ingress_write.check().ok
        for _ in range(100):
            if ingress_write.check().ok:
                break
            await asyncio.sleep(0.01)
        assert ingress_write.check().ok
        assert answers == []  # asked twice: refused still, then let through
    finally:
        watch.cancel()


async def test_the_workers_login_stops_the_start_though_kafka_lets_it_see_the_topic(
    tmp_path: Any, agency_keys: FileKeyStore
) -> None:
    """The worker reads every ingress topic, so Describe says yes: its name says no."""
    kafka = _logged_in_as(SeeingOnly(ingress("wmp")), "worker")
    with pytest.raises(ConfigError) as err:
        await _run(tmp_path, agency_keys, kafka)
    message = str(err.value)
    assert "\n" not in message
    assert "the gateway of wmp logs in to Kafka as 'worker', not as 'wmp'" in message
    assert f"only wmp's own login may write {ingress('wmp')}" in message
    assert PASSWORD not in message
    assert kafka.asked == []  # refused before Kafka was asked anything


async def test_a_login_named_after_the_party_starts(
    tmp_path: Any, agency_keys: FileKeyStore
) -> None:
    kafka = _logged_in_as(SeeingOnly(ingress("wmp")), "wmp")
    [run] = await _run(tmp_path, agency_keys, kafka)
    assert (run.topic, kafka.asked) == (ingress("wmp"), [ingress("wmp")])


class _Asked:
    """A Describe probe answering from ``answers``, then ``then`` for good; counts asks."""

    def __init__(self, *answers: bool | None, then: bool | None = True) -> None:
        self.answers, self.then, self.asked = list(answers), then, 0

    async def __call__(self) -> bool | None:
        self.asked += 1
        return self.answers.pop(0) if self.answers else self.then


async def _until(condition: Any) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not within 2 s")


async def test_a_login_that_could_see_the_topic_when_refused_stays_unready_until_a_write() -> None:
    """Describe comes with Read too: a yes at the refusal and after says nothing of Write,
    so readiness does not flap back to ready each recheck only to have a write refused."""
    ingress_write, probe = IngressWrite(), _Asked(then=True)
    watch = asyncio.create_task(ingress_write.watch(probe, 0.01))
    try:
        ingress_write.refused(ingress("wmp"))
        await _until(lambda: probe.asked >= 5)
        assert not ingress_write.check().ok
        ingress_write.written()
        assert ingress_write.check().ok
    finally:
        watch.cancel()


async def test_kafka_is_asked_at_the_refusal_not_a_recheck_later() -> None:
    ingress_write, probe = IngressWrite(), _Asked(then=False)
    watch = asyncio.create_task(ingress_write.watch(probe, 60))
    try:
        await asyncio.sleep(0.05)
        assert probe.asked == 0  # nothing refused: nothing asked
        ingress_write.refused(ingress("wmp"))
        await _until(lambda: probe.asked == 1)
    finally:
        watch.cancel()


async def test_a_grant_given_back_is_ready_once_and_a_new_refusal_seen_allowed_stays_unready() -> (
    None
):
    ingress_write, probe = IngressWrite(), _Asked(False, True, then=True)
    watch = asyncio.create_task(ingress_write.watch(probe, 0.01))
    try:
        ingress_write.refused(ingress("wmp"))
        await _until(lambda: ingress_write.check().ok)  # no, then yes: the grant given back
        assert probe.asked == 2
        ingress_write.refused(ingress("wmp"))  # Write still refused, Describe allowed
        await _until(lambda: probe.asked >= 6)
        assert not ingress_write.check().ok
    finally:
        watch.cancel()


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def _ready_at(ingress_write: IngressWrite, clock: _Clock, probe: _Asked, at: float) -> bool:
    """Whether ``/readyz`` would say ready at ``at``, once Kafka was asked twice since."""
    clock.now, asked = at, probe.asked
    await _until(lambda: probe.asked >= asked + 2 or ingress_write.check().ok)
    return ingress_write.check().ok


async def test_a_refusal_then_describe_always_allowed_is_ready_again_after_the_back_off() -> None:
    """A sound grant that refused one write (ACLs still spreading between Kafka's brokers)
    behind a platform that sends nothing to an unready gateway: no write ever tells, so a
    yes says ready once FIRST_BACKOFF has passed since the refusal, not sooner."""
    clock, probe = _Clock(), _Asked(then=True)
    ingress_write = IngressWrite(clock=clock)
    watch = asyncio.create_task(ingress_write.watch(probe, 0.01))
    try:
        clock.now = 1000.0
        ingress_write.refused(ingress("wmp"))
        assert not await _ready_at(ingress_write, clock, probe, 1000 + FIRST_BACKOFF - 1)
        assert await _ready_at(ingress_write, clock, probe, 1000 + FIRST_BACKOFF)
    finally:
        watch.cancel()


async def test_each_refusal_after_coming_back_doubles_the_back_off_up_to_its_cap() -> None:
    """A login that may read but not write is let try once a back-off, ever more seldom."""
    clock, probe = _Clock(), _Asked(then=True)
    ingress_write = IngressWrite(clock=clock)
    watch = asyncio.create_task(ingress_write.watch(probe, 0.01))
    try:
        at = 0.0
        for backoff in (60, 120, 240, 480, 960, MAX_BACKOFF, MAX_BACKOFF):
            ingress_write.refused(ingress("wmp"))  # the write let through is refused again
            assert not await _ready_at(ingress_write, clock, probe, at + backoff - 1)
            assert await _ready_at(ingress_write, clock, probe, at + backoff)
            at = clock.now
    finally:
        watch.cancel()


async def test_a_successful_write_starts_the_back_off_again() -> None:
    clock, probe = _Clock(), _Asked(then=True)
    ingress_write = IngressWrite(clock=clock)
    watch = asyncio.create_task(ingress_write.watch(probe, 0.01))
    try:
        for at in (0.0, 100.0):  # two refusals: the next back-off would be 240 s
            clock.now = at
            ingress_write.refused(ingress("wmp"))
            ingress_write.written()
        clock.now = 500.0
        ingress_write.refused(ingress("wmp"))
        assert await _ready_at(ingress_write, clock, probe, 500 + FIRST_BACKOFF)
    finally:
        watch.cancel()


async def test_a_write_refused_while_held_starts_the_back_off_over() -> None:
    """Each refused write is Kafka saying no to Write then: the back-off runs from the last."""
    clock, probe = _Clock(), _Asked(then=True)
    ingress_write = IngressWrite(clock=clock)
    watch = asyncio.create_task(ingress_write.watch(probe, 0.01))
    try:
        ingress_write.refused(ingress("wmp"))
        clock.now = 50.0
        ingress_write.refused(ingress("wmp"))  # a records system's retry, refused too
        assert not await _ready_at(ingress_write, clock, probe, FIRST_BACKOFF + 1)
        assert await _ready_at(ingress_write, clock, probe, 50 + FIRST_BACKOFF)
    finally:
        watch.cancel()


def test_the_ingress_refused_gauge_is_1_while_held_unready_and_0_after(gw: Gateway) -> None:
    """What AccordGatewayIngressRefused watches: 0 from the start, 1 from a refused write
    until a write succeeds."""

    def gauge() -> float | None:
        return gw.registry.get_sample_value("accord_gateway_ingress_refused")

    assert gauge() == 0
    gw.kafka.mode = "denied"
    event = gw.event()
    assert gw.post("/v1/events", event).status_code == 503
    assert gauge() == 1
    gw.kafka.mode = "ok"
    assert gw.post("/v1/events", event).status_code == 202
    assert gauge() == 0
