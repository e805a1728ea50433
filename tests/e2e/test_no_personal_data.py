"""No personal data in the worker's logs, its /metrics, or any readable byte it writes."""

from __future__ import annotations

import asyncio
import secrets
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from broker.audit import AuditKind
from broker.devkafka import EmbeddedKafka
from broker.errors import EventInvalid
from broker.policy import load_bundle
from broker.sdk import Publisher
from broker.synthetic import SyntheticFamilies
from broker.topics import AUDIT, QUARANTINE, STATE, deliver
from tests.e2e.worker_proc import WorkerProcess, keystore_for, read_all, read_audit
from tests.kafka_helpers import clients, provisioned, tries_within

pytestmark = pytest.mark.slow

POLICIES = Path(__file__).resolve().parents[2] / "policies"
METRICS = (
    "accord_events_received_total", "accord_decisions_total", "accord_quarantined_total",
    "accord_audit_records_total", "accord_pipeline_latency_seconds", "accord_consumer_lag",
    "accord_transactions_total", "accord_policy_loaded", "accord_pipeline_wait_seconds",
    "accord_transaction_seconds",
)  # fmt: skip


def _seeded_events(n: int) -> tuple[list[dict[str, Any]], list[str]]:
    """Events whose every personal value is unique enough to grep for."""
    fam = SyntheticFamilies(seed=secrets.randbits(32))
    events, seeded = [], []
    for _ in range(n):
        family = "Qz" + secrets.token_hex(4).capitalize()
        postcode = fam.postcode(("DY4", "WS10"))
        subjects = [
            fam.subject("child", family_name=family, postcode=postcode, school_urn="146201"),
            fam.subject("parent", family_name=family, postcode=postcode),
        ]
        for s in subjects:
            s["given_name"] = "Xo" + secrets.token_hex(3)
            s["address"] = f"{secrets.randbelow(900) + 100} Qwv{secrets.token_hex(2)} Road"
            seeded += [s["given_name"], s["family_name"], s["nhs_number"], s["postcode"],
                       s["address"], s["dob"]]  # fmt: skip
        events.append(fam.event("police.domestic_incident", "wmp", subjects=subjects))
    return events, seeded


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return str(r.read().decode())


async def test_logs_metrics_and_worker_topics_hold_no_personal_values(
    isolated_kafka: EmbeddedKafka, tmp_path: Path
) -> None:
    bootstrap = isolated_kafka.bootstrap
    policy = load_bundle(POLICIES)
    keys = keystore_for(policy, tmp_path / "keys")
    provisioned(bootstrap, policy)
    worker = WorkerProcess(tmp_path, keys, bootstrap, POLICIES)
    worker.start()
    events, seeded = _seeded_events(20)
    bad = dict(events[0], event_id="6a1f4a3e-0000-4000-8000-000000000001")
    bad["subjects"] = [dict(events[0]["subjects"][0], nhs_number="9990000001")]
    try:
        async with Publisher("wmp", keys, clients(bootstrap, "wmp")) as pub:
            await pub.publish_many(events)
            with pytest.raises(EventInvalid) as err:  # the SDK refuses it, naming only the field
                pub.validate(bad)
            assert "9990000001" not in str(err.value)
        for _ in tries_within(240):
            audit = await read_audit(bootstrap)
            if sum(r.kind is AuditKind.RECEIVED for r in audit) >= len(events):
                break
            assert worker.alive(), worker.tail()
            await asyncio.sleep(0.5)
        metrics = await asyncio.to_thread(_scrape, worker.metrics_port)
    finally:
        worker.stop()

    for name in METRICS:
        assert name in metrics, name
    logs = worker.log.read_text(errors="replace")
    assert "worker_started" in logs
    topics = [AUDIT, STATE, QUARANTINE] + [
        deliver(p) for p, party in policy.bundle.parties.items() if party.kind != "agency"
    ]
    raw = b""
    for topic in topics:
        raw += b"".join((m.key or b"") + (m.value or b"") for m in await read_all(bootstrap, topic))
    assert raw, "the worker wrote nothing: the grep would prove nothing"
    for value in seeded:
        assert value not in logs, "a personal value reached the logs"
        assert value not in metrics, "a personal value reached /metrics"
        assert value.encode() not in raw, "a personal value is readable on a worker topic"
