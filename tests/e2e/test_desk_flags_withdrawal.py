"""A withdrawn consent reaches the flag service: the record shared under it stops counting.

On real Kafka, with the real worker and ``accord desk flags --as sandwell-coord``: A&E shares
a contact with the co-ordinating team under the family's consent; the family withdraws it;
the worker tells the team at once (a withdrawal notice, with no record after it on the
ingress partition: a quiet partition once held it back), and the flag service forgets the record.
Two police contacts follow. Had the A&E record still counted, it would have flagged the
child at the first (two domestic-abuse contacts within 30 days) and again as contacts from
two agencies; as it is, the child is flagged once, at the second, over the police records.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from broker.audit import AuditKind
from broker.desk import child_key, desk_linkage_key
from broker.devkafka import EmbeddedKafka
from broker.keys import FileKeyStore
from broker.policy import load_bundle
from broker.provision import provision
from broker.sdk import Publisher
from broker.synthetic import SyntheticFamilies
from broker.topics import deliver, desk_flags
from tests.e2e.test_desk_flags import TEAM, started_worker_and_flags, window_ids
from tests.e2e.worker_proc import POLICIES, keystore_for, read_audit
from tests.kafka_helpers import read_to_end, settings_as

DAY = timedelta(days=1)


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _consent(nhs_number: str, state: str, at: datetime) -> dict[str, Any]:
    """A&E records what the family agreed to (or withdrew) for the co-ordinating team."""
    return {"subject": {"nhs_number": nhs_number}, "state": state, "purposes": ["early_help"],
            "recipients": ["kind:coordinating_team"], "recorded_by": "swbh",
            "recorded_at": _iso(at)}  # fmt: skip


async def _publish(
    bootstrap: str, keys: FileKeyStore, sender: str, message: dict[str, Any]
) -> None:
    async with Publisher(sender, keys, settings_as(bootstrap, sender)) as pub:
        if "state" in message:
            await pub.publish_consent(message)
        else:
            await pub.publish(message)


async def _until(what: str, check: Any, *, within: float = 120.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        got = await check()
        if got:
            return got
        assert time.monotonic() < deadline, f"not within {within:g} s: {what}"
        await asyncio.sleep(0.5)


async def test_a_record_recalled_by_a_consent_withdrawal_no_longer_counts_toward_flags(
    isolated_kafka: EmbeddedKafka, tmp_path: Path
) -> None:
    bootstrap = isolated_kafka.bootstrap
    policy = load_bundle(POLICIES)
    admin = settings_as(bootstrap, "admin")
    assert admin.credentials_dir is not None
    # One partition everywhere: each step reaches the team in the order it was sent.
    provision(policy, admin.model_copy(update={"partitions": 1}),
              clients_dir=admin.credentials_dir)  # fmt: skip
    keys = keystore_for(policy, tmp_path / "keys")
    fam = SyntheticFamilies(seed=41)
    child = fam.subject("child", postcode=fam.postcode(("DY4",)))
    key = child_key(desk_linkage_key(keys, party=TEAM), {"nhs_number": child["nhs_number"]})
    assert key is not None
    now = datetime.now(UTC)

    def contact(sender: str, etype: str, days_ago: int) -> dict[str, Any]:
        return fam.event(etype, sender, subjects=[child], need_level=3,
                         occurred_at=now - days_ago * DAY, categories=["domestic_abuse"],
                         safeguarding={"concern": False, "justification": None})  # fmt: skip

    ae = contact("swbh", "health.ae_attendance", 10)
    police = [contact("wmp", "police.domestic_incident", 5),
              contact("wmp", "police.child_concern", 3)]  # fmt: skip

    worker, service = started_worker_and_flags(tmp_path, keys, bootstrap)
    try:
        await _publish(bootstrap, keys, "swbh", _consent(child["nhs_number"], "given",
                                                          now - timedelta(minutes=2)))  # fmt: skip

        async def consent_filed() -> bool:
            return any(r.kind is AuditKind.CONSENT_RECORDED for r in await read_audit(bootstrap))

        await _until("the consent is filed", consent_filed)
        await _publish(bootstrap, keys, "swbh", ae)

        async def held_ae() -> bool:
            return ae["event_id"] in (await window_ids(bootstrap, key) or [])

        await _until("the flag service holds the A&E record", held_ae)
        decided = [r for r in await read_audit(bootstrap)
                   if r.kind is AuditKind.DECIDED and r.event_id == ae["event_id"]
                   and r.party == TEAM]  # fmt: skip
        assert [r.data["outcome"] for r in decided] == ["shared"]  # under consent, not override

        await _publish(bootstrap, keys, "swbh", _consent(child["nhs_number"], "withdrawn",
                                                          now - timedelta(minutes=1)))  # fmt: skip

        async def forgotten() -> bool:
            window = await window_ids(bootstrap, key)
            return window is not None and ae["event_id"] not in window

        await _until("the flag service forgets the recalled record", forgotten)
        notices = [m for m in await read_to_end(bootstrap, deliver(TEAM))
                   if m.key is not None and m.key.startswith(b"withdrawal-")]  # fmt: skip
        assert len(notices) == 1  # the worker's notice to the team

        for event in police:
            await _publish(bootstrap, keys, "wmp", event)

            async def held(event_id: str = event["event_id"]) -> bool:
                return event_id in (await window_ids(bootstrap, key) or [])

            await _until("the flag service holds the police record", held)

        async def flags() -> list[dict[str, Any]]:
            msgs = await read_to_end(bootstrap, desk_flags(TEAM))
            return [json.loads(m.value) for m in msgs if m.value is not None]

        await _until("a flag", flags)
        await asyncio.sleep(5)  # time for a wrong extra flag to show
        raised = [(f["rule"], tuple(f["event_ids"])) for f in await flags() if f["child"] == key]
    finally:
        service.stop()
        worker.stop()

    ids = tuple(e["event_id"] for e in police)
    assert raised == [("domestic-abuse-repeat", ids)], raised
