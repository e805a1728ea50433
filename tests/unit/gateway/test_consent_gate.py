"""A party Kafka does not let write consent records is refused 403 before anything is
produced, counted and logged as Kafka's refusal is, with nothing logged at error level."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest
from aiokafka.cluster import ClusterMetadata
from aiokafka.protocol.metadata import MetadataResponse_v1
from structlog.testing import capture_logs

from broker.gateway._consent import NOT_TOLD_S, RECHECK_S, ConsentGate, quiet_consent_refusals
from broker.keys import FileKeyStore
from broker.topics import CONSENT, ingress
from tests.unit.gateway.conftest import make_gateway

CONSENTS = "/v1/consents"
RECORD = {"subject": {"nhs_number": "9997877896"}, "state": "given", "purposes": ["*"],
          "recipients": ["kind:hub"], "recorded_by": "hv-sandwell",
          "recorded_at": "2026-11-01T15:30:00Z"}  # fmt: skip
_TOPIC_AUTHORIZATION_FAILED = 29


class Kafka:
    """What a probe of ``accord.consent`` answers, and how often it was asked."""

    def __init__(self, answer: bool | None) -> None:
        self.answer = answer
        self.asked = 0

    async def probe(self) -> bool | None:
        self.asked += 1
        return self.answer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _errors(logs: list[dict[str, object]]) -> list[dict[str, object]]:
    return [e for e in logs if e.get("log_level") in {"error", "critical"}]


def test_a_party_kafka_refuses_is_answered_403_without_a_produce_or_an_error_line(
    agency_keys: FileKeyStore,
) -> None:
    kafka = Kafka(answer=False)
    gate = ConsentGate(kafka.probe)
    with (
        make_gateway(agency_keys, party="hv-sandwell", consent_gate=gate) as g,
        capture_logs() as logs,
    ):
        for _ in range(3):
            r = g.post(CONSENTS, RECORD)
            assert (r.status_code, r.json()["error"]) == (403, "refused")
            assert "consent authority" in r.json()["message"]
            assert "Retry-After" not in r.headers
        assert g.kafka.sent == []  # mode "ok": any produce would be here
        assert kafka.asked == 1  # the refusal stands; Kafka is not asked each time
        assert g.count("consent", "refused") == 3  # counted as Kafka's refusal is
        # An event of the same party is not touched by it.
        assert g.post("/v1/events", g.event(sender="hv-sandwell")).status_code != 403
    refused = [e for e in logs if e["event"] == "gateway_refused"]
    assert [(e["endpoint"], e["outcome"], e["status"]) for e in refused] == [
        ("consent", "refused", 403)
    ] * 3
    assert _errors(logs) == []


def test_a_party_kafka_lets_write_consent_publishes_and_is_asked_once(
    agency_keys: FileKeyStore,
) -> None:
    kafka = Kafka(answer=True)
    with make_gateway(agency_keys, party="hv-sandwell", consent_gate=ConsentGate(kafka.probe)) as g:
        assert g.post(CONSENTS, RECORD).status_code == 202
        assert g.post(CONSENTS, RECORD).status_code == 202
        assert [t for t, _, _ in g.kafka.sent] == [CONSENT, CONSENT]
        assert kafka.asked == 1


def test_when_kafka_cannot_tell_the_writes_are_tried_and_it_is_asked_again_after_not_told_s(
    agency_keys: FileKeyStore,
) -> None:
    """A degraded Kafka is not probed per record: "cannot tell" stands NOT_TOLD_S."""
    kafka, clock = Kafka(answer=None), Clock()
    gate = ConsentGate(kafka.probe, clock=clock)
    with make_gateway(agency_keys, party="hv-sandwell", consent_gate=gate) as g:
        assert g.post(CONSENTS, RECORD).status_code == 202
        assert g.post(CONSENTS, RECORD).status_code == 202
        assert kafka.asked == 1
        clock.now += NOT_TOLD_S
        assert g.post(CONSENTS, RECORD).status_code == 202
        assert kafka.asked == 2


class SlowKafka:
    """A probe that answers only when the test lets it, counting the probes begun."""

    def __init__(self, answer: bool | None) -> None:
        self.answer, self.asked, self.answer_now = answer, 0, asyncio.Event()

    async def probe(self) -> bool | None:
        self.asked += 1
        await self.answer_now.wait()
        return self.answer


async def _all_waiting(tasks: list[asyncio.Task[bool]]) -> None:
    for _ in range(10):  # a few turns of the loop: each reaches the probe, none gets past it
        await asyncio.sleep(0)
    assert not any(t.done() for t in tasks)


@pytest.mark.parametrize("answer", [True, None])
async def test_consents_that_come_while_kafka_is_slow_share_one_probe(answer: bool | None) -> None:
    """Four at once: one probe, and all four go on when it answers, not one after another."""
    kafka = SlowKafka(answer)
    gate = ConsentGate(kafka.probe)
    tasks = [asyncio.create_task(gate.may_publish()) for _ in range(4)]
    await _all_waiting(tasks)
    assert kafka.asked == 1
    kafka.answer_now.set()
    assert await asyncio.gather(*tasks) == [True] * 4
    assert kafka.asked == 1


async def test_a_caller_gone_does_not_cut_the_probe_the_others_wait_for() -> None:
    kafka = SlowKafka(False)
    gate = ConsentGate(kafka.probe)
    gone, waiting = (asyncio.create_task(gate.may_publish()) for _ in range(2))
    await _all_waiting([gone, waiting])
    gone.cancel()
    await asyncio.sleep(0)
    kafka.answer_now.set()
    assert await waiting is False
    assert gone.cancelled()
    assert await gate.may_publish() is False  # the refusal is remembered
    assert kafka.asked == 1


async def test_a_write_refused_while_the_probe_is_under_way_outweighs_its_yes() -> None:
    """The yes is not kept: once the refusal has stood RECHECK_S, Kafka is asked again."""
    kafka, clock = SlowKafka(True), Clock()
    gate = ConsentGate(kafka.probe, clock=clock)
    waiting = asyncio.create_task(gate.may_publish())
    await _all_waiting([waiting])
    gate.refused()  # a write let through earlier (Kafka could not tell), refused by Kafka
    kafka.answer_now.set()
    assert await waiting is False
    assert await gate.may_publish() is False
    assert kafka.asked == 1
    clock.now += RECHECK_S
    assert await gate.may_publish() is True
    assert kafka.asked == 2


async def test_a_probe_that_raised_with_no_one_left_waiting_logs_no_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Its exception is read (asyncio would log "Task exception was never retrieved"), and
    logged by its type only, at debug."""

    async def broken() -> bool | None:
        await asyncio.sleep(0.01)
        raise RuntimeError("kafka-1.internal:9093 said no")

    gate = ConsentGate(broken)
    gone = asyncio.create_task(gate.may_publish())
    await _all_waiting([gone])
    with capture_logs() as logs:
        gone.cancel()
        await asyncio.sleep(0.05)
        gc.collect()
        await asyncio.sleep(0)
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert [(e["event"], e["log_level"], e["error"]) for e in logs] == [
        ("gateway_consent_probe_failed", "debug", "RuntimeError")
    ]


def test_a_write_kafka_refuses_after_a_yes_is_403_and_later_ones_are_refused_before_producing(
    agency_keys: FileKeyStore,
) -> None:
    """Kafka's ACLs are the second line (a grant taken away since the probe said yes): the
    refusal is remembered, and after RECHECK_S Kafka is asked again (a grant given back)."""
    kafka, clock = Kafka(answer=True), Clock()
    gate = ConsentGate(kafka.probe, clock=clock)
    with (
        make_gateway(agency_keys, party="hv-sandwell", consent_gate=gate) as g,
        capture_logs() as logs,
    ):
        assert g.post(CONSENTS, RECORD).status_code == 202
        g.kafka.mode = "denied"
        r = g.post(CONSENTS, RECORD)
        assert (r.status_code, r.json()["error"]) == (403, "refused")
        assert "consent authority" in r.json()["message"]
        g.kafka.mode = "ok"  # a produce now would be written: none is tried
        assert g.post(CONSENTS, RECORD).status_code == 403
        assert len(g.kafka.sent) == 1
        assert kafka.asked == 1
        clock.now += RECHECK_S
        assert g.post(CONSENTS, RECORD).status_code == 202
        assert kafka.asked == 2
        assert g.count("consent", "refused") == 2
    assert _errors(logs) == []
    # For a consent authority, a grant lost is a fault: one warning, when the yes is lost.
    lost = [e for e in logs if e["event"] == "gateway_consent_grant_lost"]
    assert [e["log_level"] for e in lost] == ["warning"]
    assert set(lost[0]) == {"event", "log_level", "topic", "why"}  # nothing of the record


def test_a_refusal_with_no_yes_before_it_is_no_warning(agency_keys: FileKeyStore) -> None:
    """A party that never was a consent authority: its refusals are the caller's, at info."""
    with make_gateway(agency_keys, party="hv-sandwell") as g, capture_logs() as logs:
        g.kafka.mode = "denied"
        assert g.post(CONSENTS, RECORD).status_code == 403
    assert [e for e in logs if e["event"] == "gateway_consent_grant_lost"] == []


def test_without_a_probe_writes_are_tried_until_kafka_refuses_one_then_it_is_remembered(
    agency_keys: FileKeyStore,
) -> None:
    with make_gateway(agency_keys, party="hv-sandwell") as g:
        assert g.post(CONSENTS, RECORD).status_code == 202
        g.kafka.mode = "denied"
        assert g.post(CONSENTS, RECORD).status_code == 403
        g.kafka.mode = "ok"
        assert g.post(CONSENTS, RECORD).status_code == 403  # remembered, as with a probe
        assert len(g.kafka.sent) == 1


def _refusal_of(*topics: str) -> MetadataResponse_v1:
    return MetadataResponse_v1(
        brokers=[(0, "kafka", 9092, None)], controller_id=0,
        topics=[(_TOPIC_AUTHORIZATION_FAILED, t, False, []) for t in topics],
    )  # fmt: skip


def test_aiokafkas_refusal_of_the_consent_topic_logs_no_error_while_the_gateway_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """aiokafka's own line (its cluster metadata, as a produce's refusal makes it), dropped
    for accord.consent only: another topic refused is a fault, and still an error."""
    caplog.set_level(logging.INFO)
    with quiet_consent_refusals():
        ClusterMetadata().update_metadata(_refusal_of(CONSENT, ingress("hv-sandwell")))
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [f"Topic {ingress('hv-sandwell')} is not authorized for this client"]
    caplog.clear()
    ClusterMetadata().update_metadata(_refusal_of(CONSENT))  # the filter is gone after
    assert [r.levelno for r in caplog.records] == [logging.ERROR]
