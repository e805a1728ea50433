"""On the real broker: an event POSTed to an agency's gateway (with curl, as docs/gateway.md
shows) is decided by the worker and delivered; the same event POSTed again is quarantined as
a replay, never decided twice."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from broker.audit import AuditKind, AuditRecord
from broker.config import GatewaySettings, KafkaSettings, KeyProtection, KeystoreSettings, Settings
from broker.devkafka import EmbeddedKafka
from broker.gateway import GatewayRun, run_gateway
from broker.pipeline import WorkerOptions
from tests.e2e.worker_proc import (
    POLICIES,
    assert_exactly_once,
    incidents,
    project_broker,
    read_audit,
    worker_in_process,
)
from tests.kafka_helpers import clients, tries_within

pytestmark = pytest.mark.slow

TOKEN = "e2e-" + "gateway-t0ken-" * 3  # synthetic


async def _curl(url: str, body: dict[str, Any], home: Path) -> tuple[int, dict[str, Any]]:
    """POST as docs/gateway.md does: the token's header and the event each from a file."""
    (home / "event.json").write_text(json.dumps(body))
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", "-w", "\n%{http_code}", "-H", f"@{home / 'auth-header'}",
        "-H", "Content-Type: application/json", "--data-binary", f"@{home / 'event.json'}",
        f"{url}v1/events",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    answer, _, status = out.decode().rpartition("\n")
    return int(status), json.loads(answer)


async def _until(bootstrap: str, done: Callable[[list[AuditRecord]], bool]) -> list[AuditRecord]:
    for _ in tries_within(480):
        audit = await read_audit(bootstrap)
        if done(audit):
            return audit
        await asyncio.sleep(0.5)
    raise AssertionError("the worker did not get there")


async def test_an_event_posted_over_http_is_decided_once_and_delivered(
    isolated_kafka: EmbeddedKafka, tmp_path: Path
) -> None:
    bootstrap = isolated_kafka.bootstrap
    policy, keys = project_broker(bootstrap, tmp_path)
    wmp = clients(bootstrap, "wmp")  # the gateway logs in as the agency itself
    settings = Settings(
        home=tmp_path,
        kafka=KafkaSettings(bootstrap=bootstrap),
        keystore=KeystoreSettings(path=keys.path, protection=KeyProtection.NONE),
        gateway=GatewaySettings(port=0, token=SecretStr(TOKEN)),
    )
    (tmp_path / "auth-header").write_text(f"Authorization: Bearer {TOKEN}\n")
    [event] = incidents(1, seed=41)
    event = json.loads(json.dumps(event, default=str))
    eid = event["event_id"]
    runs: list[GatewayRun] = []
    stop = asyncio.Event()
    async with worker_in_process(bootstrap, tmp_path, keys, WorkerOptions(POLICIES)) as (task, _):
        gateway = asyncio.create_task(
            run_gateway(settings, "wmp", keys, wmp, started=runs.append, stop=stop)
        )
        try:
            for _ in range(200):
                if runs or gateway.done():
                    break
                await asyncio.sleep(0.1)
            if gateway.done():
                gateway.result()  # a gateway that refused to start says why
            [run] = runs
            assert run.topic == "accord.ingress.wmp"

            status, answer = await _curl(run.url, event, tmp_path)
            assert (status, answer) == (202, {"event_id": eid, "topic": "accord.ingress.wmp"})
            await _until(
                bootstrap,
                lambda a: any(r.kind is AuditKind.DECIDED and r.event_id == eid for r in a),
            )
            # The same event again, as a caller told 'unconfirmed' re-sends it: Kafka takes
            # it, and the worker refuses it as a replay.
            status, answer = await _curl(run.url, event, tmp_path)
            assert (status, answer["event_id"]) == (202, eid)
            audit = await _until(
                bootstrap, lambda a: any(r.kind is AuditKind.QUARANTINED for r in a)
            )
            assert not task.done()
        finally:
            stop.set()
            await asyncio.wait_for(gateway, 30)

    # Refused when it was opened (its id seen before), so the record names no event.
    [replay] = [r for r in audit if r.kind is AuditKind.QUARANTINED]
    assert replay.data["reason"] == "replay"
    assert Counter(r.event_id for r in audit if r.kind is AuditKind.RECEIVED) == {eid: 1}
    # Decided once per candidate, delivered once to each recipient it shares with.
    await assert_exactly_once(bootstrap, policy, keys, [event])
