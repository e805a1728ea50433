"""On the real broker: consent from a suspended or unauthorised party is refused, audited as
refused, and changes no decision; the same consent from an authority does."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from broker.audit import AuditKind, AuditRecord
from broker.devkafka import EmbeddedKafka
from broker.errors import TransportError
from broker.kafka import KafkaClients
from broker.keys import FileKeyStore
from broker.pipeline import WorkerOptions
from broker.sdk import Publisher
from broker.synthetic import SyntheticFamilies
from tests.e2e.worker_proc import project_broker, read_audit, worker_in_process
from tests.kafka_helpers import clients, tries_within

pytestmark = pytest.mark.slow

POLICIES = Path(__file__).resolve().parents[2] / "policies"
HUB = "cog-tipton"  # police incidents reach this hub only with the child's consent


def _consent(child: dict[str, Any], by: str, recipients: list[str]) -> dict[str, Any]:
    return {"subject": {"nhs_number": child["nhs_number"]}, "state": "given",
            "purposes": ["early_help"], "recipients": recipients, "recorded_by": by,
            "recorded_at": "2026-10-01T09:00:00Z"}  # fmt: skip


async def _publish(
    party: str, keys: FileKeyStore, kafka: KafkaClients, consent: dict[str, Any]
) -> None:
    async with Publisher(party, keys, kafka) as pub:
        await pub.publish_consent(consent)


async def _until(bootstrap: str, done: Callable[[list[AuditRecord]], bool]) -> list[AuditRecord]:
    for _ in tries_within(240):
        audit = await read_audit(bootstrap)
        if done(audit):
            return audit
        await asyncio.sleep(0.5)
    raise AssertionError("the worker did not get there")


def _hub_decision(audit: list[AuditRecord], event_id: str) -> tuple[str, str | None]:
    [d] = [r for r in audit if r.kind is AuditKind.DECIDED and r.event_id == event_id
           and r.party == HUB]  # fmt: skip
    return d.data["outcome"], d.data["reason"]


async def test_consent_outside_authority_is_refused_and_changes_no_decision(
    isolated_kafka: EmbeddedKafka, tmp_path: Path
) -> None:
    bootstrap = isolated_kafka.bootstrap
    _, keys = project_broker(bootstrap, tmp_path)
    fam = SyntheticFamilies(seed=31)
    family, postcode = fam.faker.last_name(), "DY4 7AA"  # Tipton: the COG's locality
    child = fam.subject("child", family_name=family, postcode=postcode, age=7)
    parent = fam.subject("parent", family_name=family, postcode=postcode)

    def incident() -> dict[str, Any]:
        return fam.event("police.domestic_incident", "wmp", subjects=[child, parent])

    async def decide_hub(event: dict[str, Any]) -> tuple[str, str | None]:
        async with Publisher("wmp", keys, clients(bootstrap, "wmp")) as pub:
            await pub.publish(event)
        eid = event["event_id"]
        audit = await _until(
            bootstrap, lambda a: any(r.kind is AuditKind.DECIDED and r.event_id == eid for r in a)
        )
        return _hub_decision(audit, event["event_id"])

    async with worker_in_process(bootstrap, tmp_path, keys, WorkerOptions(POLICIES)) as (task, _):
        # The police may not write accord.consent at all: Kafka refuses them.
        with pytest.raises(TransportError):
            await _publish("wmp", keys, clients(bootstrap, "wmp"),
                           _consent(child, "wmp", ["kind:hub"]))  # fmt: skip
        # A health visitor may, but only for hubs and teams, and names every recipient.
        await _publish("hv-wolverhampton", keys, clients(bootstrap, "hv-wolverhampton"),
                       _consent(child, "hv-wolverhampton", ["*"]))  # fmt: skip
        # Someone with write access anyway (the admin's login) sends what the police and a
        # suspended party sealed.
        admin = clients(bootstrap)
        await _publish("wmp", keys, admin, _consent(child, "wmp", ["kind:hub"]))
        await _publish("smethwick-fsp", keys, admin, _consent(child, "smethwick-fsp",
                                                                ["kind:hub"]))  # fmt: skip
        audit = await _until(bootstrap, lambda a: sum(
            r.kind is AuditKind.CONSENT_REFUSED for r in a) >= 3)  # fmt: skip
        refused = {r.party: r.data["reason"] for r in audit
                   if r.kind is AuditKind.CONSENT_REFUSED}  # fmt: skip
        assert refused == {"hv-wolverhampton": "outside-authority",
                           "wmp": "not-a-consent-authority",
                           "smethwick-fsp": "party-inactive"}  # fmt: skip
        assert not any(r.kind is AuditKind.CONSENT_RECORDED for r in audit)
        assert await decide_hub(incident()) == ("not_shared", "consent-missing")

        # The same consent from an authority counts.
        await _publish("sandwell-coord", keys, clients(bootstrap, "sandwell-coord"),
                       _consent(child, "sandwell-coord", ["kind:hub"]))  # fmt: skip
        await _until(bootstrap, lambda a: any(r.kind is AuditKind.CONSENT_RECORDED for r in a))
        assert await decide_hub(incident()) == ("shared", None)
        assert not task.done()
