"""A gateway whose Kafka login may not write its party's ingress topic does not start; one
that loses the grant while running says not ready until Kafka lets it write again."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import SecretStr

from broker.config import GatewaySettings, Settings
from broker.errors import ConfigError
from broker.gateway import GatewayRun, run_gateway
from broker.gateway._ingress import IngressWrite
from broker.keys import FileKeyStore
from broker.topics import ingress
from tests.unit.gateway.conftest import TOKEN, X25519, FakeKafka


class SeeingOnly(FakeKafka):
    """Kafka that lets this login see ``seen`` only (as swbh's login sees swbh's topic)."""

    def __init__(self, *seen: str) -> None:
        super().__init__()
        self.seen = seen
        self.asked: list[str] = []

    async def may_describe(self, topic: str, timeout_ms: int = 3000) -> bool | None:  # noqa: ARG002
        self.asked.append(topic)
        return topic in self.seen


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
    assert f"does not let this gateway's login write {ingress('wmp')}" in message
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
