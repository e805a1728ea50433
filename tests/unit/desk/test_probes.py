"""What the desk's and the flag service's ``/livez`` and ``/readyz`` answer, from their state."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from broker.desk._ingest import DeskIngest
from broker.desk._ingest_held import HELD_METRIC, DeliveriesHeld
from broker.desk._probes import CONTACT_METRIC, DeskProbes, FlagsProbes, KafkaContact
from broker.errors import RecordKeyUnavailable, TransportError
from broker.webauth import TotpBox, UserFile


async def _forever() -> None:
    await asyncio.Event().wait()


async def _fails() -> None:
    raise RuntimeError("consumer gone")


async def test_the_desk_is_ready_once_its_pages_serve_and_its_consumer_runs() -> None:
    started = False
    probes = DeskProbes(server_started=lambda: started, accounts=lambda: True)
    # Opening its clients: live (a slow start is not a stall), not ready.
    assert probes.live().ok
    assert probes.ready().reason == "web server not started"
    probes.http = asyncio.create_task(_forever())
    probes.ingest = asyncio.create_task(_forever())
    assert not probes.ready().ok
    started = True
    assert probes.ready().ok
    assert probes.live().ok
    for task in (probes.http, probes.ingest):
        task.cancel()


async def test_a_desk_whose_delivery_consumer_failed_is_neither_ready_nor_live() -> None:
    probes = DeskProbes(server_started=lambda: True, accounts=lambda: True)
    probes.http = asyncio.create_task(_forever())
    probes.ingest = asyncio.create_task(_fails())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert probes.ingest.done()
    assert (probes.ready().ok, probes.ready().reason) == (False, "delivery consumer not running")
    assert (probes.live().ok, probes.live().reason) == (False, "delivery consumer stopped")
    probes.http.cancel()


async def test_a_held_desk_stays_live_and_ready_and_its_gauge_says_it_is_held() -> None:
    """Held on a record its keystore cannot open, the desk still serves what it holds: its
    ingest loop runs on, so neither probe fails (a platform routing by /readyz keeps its
    pages up), and accord_desk_deliveries_held is 1 on the ops server's metrics."""
    registry = CollectorRegistry()
    held = DeliveriesHeld(registry)

    class Held:
        async def poll(self, wait: float, *, commit: bool = True) -> list[Any]:  # noqa: ARG002  # the SDK's signature
            raise RecordKeyUnavailable(
                "accord.deliver.sandwell-coord partition 0 offset 3 cannot be opened",
                topic="accord.deliver.sandwell-coord", partition=0, offset=3, key_id="cd" * 8,
            )  # fmt: skip

    ingest = DeskIngest(
        None, Held(), linkage_key=b"k" * 32, clock=lambda: None,  # type: ignore[arg-type]  # fakes
        held=held,
    )  # fmt: skip
    stop = asyncio.Event()
    probes = DeskProbes(server_started=lambda: True, accounts=lambda: True)
    probes.watch(
        asyncio.create_task(_forever()), asyncio.create_task(ingest.run(stop, interval=0.01))
    )
    for _ in range(100):
        if held.held:
            break
        await asyncio.sleep(0.01)
    assert registry.get_sample_value(HELD_METRIC) == 1
    assert probes.live().ok
    assert probes.ready().ok
    stop.set()
    assert probes.ingest is not None
    await asyncio.wait_for(probes.ingest, timeout=5)
    assert probes.http is not None
    probes.http.cancel()


async def test_a_desk_whose_web_server_stopped_is_neither_ready_nor_live() -> None:
    probes = DeskProbes(server_started=lambda: True, accounts=lambda: True)
    probes.http = asyncio.create_task(asyncio.sleep(0))
    probes.ingest = asyncio.create_task(_forever())
    await probes.http
    assert probes.ready().reason == "web server not started"
    assert probes.live().reason == "web server stopped"
    probes.ingest.cancel()


async def test_a_desk_with_no_account_yet_runs_but_is_ready_only_once_one_is_added(
    tmp_path: Path,
) -> None:
    """add-user is run in the desk's container, so the desk must keep running (live); ready
    once the file holds an account, read again by the probe: no restart."""
    users = UserFile(tmp_path / "users.json", box=TotpBox(bytes(32), "desk:cog-tipton"))
    probes = DeskProbes(server_started=lambda: True, accounts=users.has_accounts)
    probes.http = asyncio.create_task(_forever())
    probes.ingest = asyncio.create_task(_forever())
    assert (probes.ready().ok, probes.ready().reason) == (False, "no accounts yet")
    assert probes.live().ok
    users.add("kim.ward", "a long enough secret")
    assert probes.ready().ok
    users.path.write_text("{not json")
    assert (probes.ready().ok, probes.ready().reason) == (False, "accounts file unreadable")
    assert probes.live().ok
    for task in (probes.http, probes.ingest):
        task.cancel()


def test_the_flag_service_is_ready_from_its_first_beat_and_live_while_it_beats() -> None:
    now = [100.0]
    probes = FlagsProbes(30.0, clock=lambda: now[0])
    # faust recovering its tables: live, not ready.
    assert probes.live().ok
    assert (probes.ready().ok, probes.ready().reason) == (False, "agents not started")
    probes.beat()
    assert probes.ready().ok
    assert probes.live().ok
    now[0] += 31  # the loop has not gone round: a stall
    assert (probes.live().ok, probes.live().reason) == (False, "main loop stalled")
    assert not probes.ready().ok
    probes.beat()
    assert probes.ready().ok
    probes.stopping()
    assert (probes.ready().ok, probes.ready().reason) == (False, "stopping")
    assert probes.live().ok


async def test_the_flag_services_beat_is_a_task_that_beats_until_cancelled() -> None:
    probes = FlagsProbes(30.0)
    task = asyncio.create_task(probes.run())
    await asyncio.sleep(0.01)
    assert probes.started
    assert probes.ready().ok
    task.cancel()


def test_the_desks_ops_server_is_off_unless_its_port_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from broker.config import load_settings

    assert load_settings().desk.metrics_port is None
    monkeypatch.setenv("ACCORD_DESK__METRICS_HOST", "0.0.0.0")  # noqa: S104  # a container's
    monkeypatch.setenv("ACCORD_DESK__METRICS_PORT", "9468")
    desk = load_settings().desk
    assert (desk.metrics_host, desk.metrics_port) == ("0.0.0.0", 9468)  # noqa: S104


# -- when Kafka last answered ----------------------------------------------------------------


class FakeConsumer:
    """A metadata client: ``topics()`` answers unless ``down``; a failed start is final, as
    aiokafka's is."""

    def __init__(self, down: list[bool]) -> None:
        self._down = down
        self.started = self.stopped = False
        self.asked = 0

    async def start(self) -> None:
        if self._down[0]:
            raise OSError("no route to host")
        self.started = True

    async def topics(self) -> set[str]:
        assert self.started
        if self._down[0]:
            raise OSError("connection reset")
        self.asked += 1
        return {"accord.deliver.sandwell-coord"}

    async def stop(self) -> None:
        self.stopped = True


def _value(registry: CollectorRegistry) -> float:
    value = registry.get_sample_value(CONTACT_METRIC)
    assert value is not None
    return value


def _contact(
    down: list[bool], wall: list[float], mono: list[float]
) -> tuple[CollectorRegistry, KafkaContact, list[FakeConsumer]]:
    registry = CollectorRegistry()
    made: list[FakeConsumer] = []

    def new() -> Any:
        made.append(FakeConsumer(down))
        return made[-1]

    contact = KafkaContact(
        registry, new, every=30, clock=lambda: wall[0], monotonic=lambda: mono[0]
    )
    return registry, contact, made


async def test_the_contact_gauge_starts_at_the_start_time_and_moves_only_on_answers() -> None:
    down, wall, mono = [False], [1_000.0], [0.0]
    registry, contact, made = _contact(down, wall, mono)
    assert _value(registry) == 1_000.0  # never answered yet: as old as the process
    wall[0], mono[0] = 1_005.0, 5.0
    assert await contact.check()
    assert _value(registry) == 1_005.0
    wall[0], mono[0] = 1_020.0, 20.0
    assert await contact.check()  # asked 15 s ago: not asked again
    assert (made[0].asked, _value(registry)) == (1, 1_005.0)
    down[0] = True
    for step in range(1, 4):  # an hour without an answer: the gauge does not move
        wall[0], mono[0] = 1_005.0 + step * 1200, 5.0 + step * 1200
        assert not await contact.check()
    assert _value(registry) == 1_005.0
    down[0] = False
    wall[0], mono[0] = 9_000.0, 9_000.0
    assert await contact.check()
    assert _value(registry) == 9_000.0
    await contact.close()
    assert made[0].stopped
    text = generate_latest(registry).decode()
    assert f"{CONTACT_METRIC} 9000.0" in text  # no labels: nothing in it names anyone


async def test_a_contact_whose_first_start_failed_makes_a_new_client_next_time() -> None:
    down, wall, mono = [True], [1_000.0], [0.0]
    registry, contact, made = _contact(down, wall, mono)
    assert not await contact.check()
    assert made[0].stopped  # stopped on the way out, not left unclosed
    down[0], wall[0], mono[0] = False, 1_040.0, 40.0
    assert await contact.check()
    assert len(made) == 2
    assert _value(registry) == 1_040.0


async def test_a_contact_that_gets_no_answer_in_time_counts_as_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import broker.desk._probes as probes

    monkeypatch.setattr(probes, "_ANSWER_WITHIN", 0.05)

    class Hangs(FakeConsumer):
        async def topics(self) -> set[str]:
            await asyncio.Event().wait()
            return set()

    registry = CollectorRegistry()
    contact = KafkaContact(registry, lambda: Hangs([False]), clock=lambda: 5.0)
    registry_before = _value(registry)
    assert not await contact.check()
    assert _value(registry) == registry_before


class _Subscriber:
    parked = 0  # the SDK's count of parked deliveries

    def __init__(self, fails: bool) -> None:
        self.fails = fails

    async def poll(self, wait: float, *, commit: bool = True) -> list[Any]:  # noqa: ARG002  # the SDK's signature
        await asyncio.sleep(wait)
        if self.fails:
            raise TransportError("consuming accord.deliver.sandwell-coord: KafkaError")
        return []

    async def commit(self) -> None:
        pass


class _Contact:
    def __init__(self) -> None:
        self.checked = 0

    async def check(self) -> bool:
        self.checked += 1
        return True


@pytest.mark.parametrize(("fails", "checked"), [(False, True), (True, False)])
async def test_the_desk_asks_kafka_after_each_poll_that_did_not_fail(
    fails: bool, checked: bool
) -> None:
    """A poll that keeps failing (its grants gone, say) never reaches the contact, so the
    gauge goes stale as when no broker answers."""
    contact = _Contact()
    ingest = DeskIngest(
        None, _Subscriber(fails), linkage_key=b"k" * 32, clock=lambda: None,  # type: ignore[arg-type]  # fakes
        contact=contact,  # type: ignore[arg-type]
    )  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(ingest.run(stop, interval=0.01))
    await asyncio.sleep(0.1)
    stop.set()
    await task
    assert (contact.checked > 0) is checked


def test_the_desks_public_metrics_keep_to_the_pages_and_its_ops_metrics_add_their_own() -> None:
    """The pages' /metrics is behind the public proxy: what the ops server adds (when Kafka
    last answered; its TLS expiry, put on the same registry by ``serving_ops``) stays off it."""
    from broker.config import KafkaSecurity, KafkaSettings
    from broker.desk._serve import _ops_metrics
    from broker.kafka import KafkaClients

    pages = CollectorRegistry()
    Gauge("accord_desk_encompass_late_notices", "late", registry=pages).set(2)
    plain = KafkaClients(KafkaSettings(security_protocol=KafkaSecurity.PLAINTEXT))
    ops, _, _ = _ops_metrics(pages, plain, "cog-tipton")
    assert ops is not pages
    assert ops.get_sample_value("accord_desk_encompass_late_notices") == 2
    assert ops.get_sample_value(CONTACT_METRIC) is not None
    assert pages.get_sample_value(CONTACT_METRIC) is None
    assert ops.get_sample_value(HELD_METRIC) == 0
    assert pages.get_sample_value(HELD_METRIC) is None


async def test_a_served_desk_hands_its_kafka_contact_to_the_pages_for_their_banner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hub's and school's 'cannot reach Kafka' banner reads the contact the ingest asks
    Kafka through: run_desk must give the pages that same contact (it gave them none)."""
    from broker.config import KafkaSecurity, KafkaSettings, load_settings
    from broker.desk import _serve
    from broker.kafka import KafkaClients
    from broker.policy import Policy

    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    monkeypatch.setenv("ACCORD_DESK__PORT", "0")  # it binds before building the pages
    made: dict[str, Any] = {}

    class Built(Exception):
        pass

    def ops_metrics(*args: Any) -> Any:
        made["ops"] = real_ops(*args)
        return made["ops"]

    def deps(**kwargs: Any) -> Any:
        made["deps"] = kwargs
        raise Built

    real_ops = _serve._ops_metrics
    monkeypatch.setattr(_serve, "_ops_metrics", ops_metrics)
    monkeypatch.setattr(_serve, "DeskDeps", deps)
    monkeypatch.setattr(_serve, "_party_clients", lambda *_a: (None, None, None))
    monkeypatch.setattr(_serve, "desk_linkage_key", lambda *_a, **_k: b"k" * 32)
    monkeypatch.setattr(_serve, "_users", lambda *_a: _NoUsers())
    monkeypatch.setattr(_serve, "device_key", lambda *_a: b"d" * 32)
    plain = KafkaClients(KafkaSettings(security_protocol=KafkaSecurity.PLAINTEXT))
    policy = Policy.load(Path("policies"))
    with pytest.raises(Built):
        await _serve.run_desk(load_settings(), "cog-tipton", policy, None, plain)  # type: ignore[arg-type]
    assert made["deps"]["kafka_contact"] is made["ops"][1]


class _NoUsers:
    owner = "nobody"
    path = Path("/nonexistent")

    def has_accounts(self) -> bool:
        return False
