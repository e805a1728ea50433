"""``accord demo``'s own task handling: a part that fails ends the demo with its error, and
what it prints about the audit index never holds a database password.

Kafka, the worker's pipeline and the agencies are stubbed; ``run_demo``'s waiting is real.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from broker.cli import _demo_run
from broker.cli._demo_console import demo_console
from broker.cli._demo_run import run_demo
from broker.config import Settings
from broker.errors import SendUnconfirmed, TransportError, UsageError
from broker.keys import FileKeyStore

REPO = Path(__file__).resolve().parents[3]
Part = Callable[..., Awaitable[None]]


async def _idle(*_args: Any, stop: asyncio.Event | None = None, **_kwargs: Any) -> None:
    await (stop or asyncio.Event()).wait()


async def _done(*_args: Any, **_kwargs: Any) -> None:
    return None


class _Worker:
    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        self.started = asyncio.Event()


class _Plan:
    def __bool__(self) -> bool:
        return False


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Every part idles until the demo stops; the worker runs until cancelled."""

    async def serve(worker: _Worker, **_kwargs: Any) -> None:
        worker.started.set()
        await asyncio.Event().wait()

    async def no_flags(*_args: Any) -> tuple[None, None]:
        return None, None

    monkeypatch.setattr(_demo_run, "demo_keystores", lambda settings, _parties: (settings, None))
    monkeypatch.setattr(_demo_run, "provision", lambda *_a, **_k: _Plan())
    monkeypatch.setattr(_demo_run, "Worker", _Worker)
    monkeypatch.setattr(_demo_run, "serve", serve)
    monkeypatch.setattr(_demo_run, "_flag_service", no_flags)
    for part in ("_console", "_agencies", "_recipient"):
        monkeypatch.setattr(_demo_run, part, _idle)
    monkeypatch.setattr(_demo_run, "_loop", _done)  # the story ends at once, and normally
    return Settings(home=tmp_path, policies=REPO / "policies")


def _demo(settings: Settings, duration: float | None) -> Awaitable[None]:
    # Bounded: the defect was a demo that ran on regardless.
    return asyncio.wait_for(run_demo(settings, duration=duration, rate=1, metrics_port=0), 10)


@pytest.mark.parametrize("duration", [None, 60.0])
def test_a_console_that_cannot_start_ends_the_demo_with_its_error(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    duration: float | None,
) -> None:
    async def console(*_args: Any, **_kwargs: Any) -> None:
        raise UsageError("cannot listen on 127.0.0.1:8765: Address already in use")

    monkeypatch.setattr(_demo_run, "_console", console)
    with pytest.raises(UsageError, match=r"cannot listen on 127\.0\.0\.1:8765"):
        asyncio.run(_demo(settings, duration))
    assert "demo: the governance console failed; stopping" in capsys.readouterr().out


def test_a_taken_metrics_port_names_the_option_that_picks_another(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Taken between the demo's own check and the worker's start: the worker's error, with
    the option to pass."""

    async def serve(_worker: _Worker, **_kwargs: Any) -> None:
        raise UsageError("cannot serve metrics and probes on 127.0.0.1:0: Address already in use")

    monkeypatch.setattr(_demo_run, "serve", serve)
    with pytest.raises(UsageError, match=r"Address already in use \(pass --metrics-port PORT"):
        asyncio.run(_demo(settings, None))


def test_the_worker_s_line_names_the_metrics_port_it_bound_not_the_0_asked_for(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--metrics-port 0``, as the busy-port error suggests: the demo printed
    ``http://127.0.0.1:0/metrics`` while the worker listened elsewhere."""

    async def serve(worker: _Worker, *, listening: Callable[[int], None], **_k: Any) -> None:
        listening(43219)  # the port the ops server picked
        worker.started.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(_demo_run, "serve", serve)
    asyncio.run(_demo(settings, 0.1))
    assert "metrics at http://127.0.0.1:43219/metrics" in capsys.readouterr().out


def test_a_subscriber_that_fails_later_ends_the_demo_with_its_error(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def recipient(*_args: Any, **_kwargs: Any) -> None:
        await asyncio.sleep(0.2)
        raise TransportError("Kafka refused the login of cog-tipton")

    monkeypatch.setattr(_demo_run, "_recipient", recipient)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        with pytest.raises(TransportError, match="refused the login"):
            asyncio.run(_demo(settings, None))
        gc.collect()  # a task whose failure nobody retrieved is reported as it is collected
    # Every subscriber failed alike: the demo's one error, and no "never retrieved" after it.
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []


def test_the_story_ending_leaves_the_demo_running_until_its_duration(settings: Settings) -> None:
    loop = asyncio.new_event_loop()
    try:
        started = loop.time()
        loop.run_until_complete(_demo(settings, 0.5))
        assert loop.time() - started >= 0.5
    finally:
        loop.close()


def test_the_worker_ending_ends_the_demo(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def serve(worker: _Worker, **_kwargs: Any) -> None:
        worker.started.set()
        await asyncio.sleep(0.1)  # then stops, as on Ctrl-C passed on by the console's server

    monkeypatch.setattr(_demo_run, "serve", serve)
    asyncio.run(_demo(settings, None))


def test_the_demo_enrols_the_console_s_device_key_and_the_team_s_linkage_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No server makes either: the demo makes them as enrolment does, before its console and
    the team's flag service start and read them."""
    import broker.console
    import broker.governance
    from broker.cli._demo_loop import referral_parties
    from broker.desk import desk_linkage_key, linkage_secret_name
    from broker.policy import Policy
    from broker.webauth import device_secret_name

    policy = Policy.load(REPO / "policies")
    [team, *_] = referral_parties(policy)

    class Store:
        def close(self) -> None:
            pass

    class Service:
        log = tmp_path / "flags.log"

        def __init__(self, *_args: Any) -> None:
            pass

        async def start(self) -> None:
            assert (tmp_path / "keys" / f"{linkage_secret_name(team)}.secret").is_file()

    monkeypatch.setattr(broker.governance, "open_store", lambda *_a, **_k: Store())
    monkeypatch.setattr(broker.console, "run_console", _done)
    monkeypatch.setattr(_demo_run, "FlagServiceProcess", Service)
    settings = Settings(home=tmp_path)
    keys = FileKeyStore(tmp_path / "keys", create=True)  # one keystore for all, here
    asyncio.run(demo_console(settings, None, None, asyncio.Event(), print))  # type: ignore[arg-type]
    assert (tmp_path / "keys" / f"{device_secret_name('console')}.secret").is_file()
    _, linkage = asyncio.run(_demo_run._flag_service(settings, policy, print, None))
    assert linkage == desk_linkage_key(keys, party=team)


def test_a_worker_that_does_not_stop_in_time_is_left_said_and_the_flag_service_still_stops(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With Kafka gone, a Kafka client's stop waits out its request timeouts: the demo waits a
    bounded time, says which part it left, and still stops its flag-service child."""
    stopped: list[str] = []

    class _Flags:
        status = None

        async def stop(self) -> None:
            stopped.append("flags")

    async def flags(*_args: Any) -> tuple[_Flags, None]:
        return _Flags(), None

    async def serve(worker: _Worker, **_kwargs: Any) -> None:
        worker.started.set()
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.shield(asyncio.sleep(1.0))  # a stop that waits on Kafka

    async def agencies(*_args: Any, **_kwargs: Any) -> None:
        await asyncio.sleep(0.1)
        raise TransportError("publishing to accord.ingress.wmp: Kafka did not answer")

    monkeypatch.setattr(_demo_run, "_flag_service", flags)
    monkeypatch.setattr(_demo_run, "serve", serve)
    monkeypatch.setattr(_demo_run, "_agencies", agencies)
    monkeypatch.setattr(_demo_run, "_WORKER_STOP_S", 0.2)
    with pytest.raises(TransportError, match="did not answer"):
        asyncio.run(_demo(settings, None))
    assert stopped == ["flags"]
    assert "demo: the worker did not stop within 0.2 s (is Kafka down?)" in capsys.readouterr().out


async def test_the_agencies_send_a_record_kafka_did_not_take_again_rather_than_end_the_demo() -> (
    None
):
    """A paused Kafka once ended the whole demo at the agencies' first send given up on: the
    same record (its own event id) is tried again, waiting longer each time, until it goes."""
    record = {"event_id": "7be2e9b7-0000-4000-8000-000000000001"}
    tries: list[dict[str, Any]] = []
    said: list[str] = []

    async def send(given: dict[str, Any]) -> None:
        tries.append(given)
        if len(tries) < 3:
            raise TransportError("publishing to accord.ingress.wmp: Kafka did not answer")

    stop = asyncio.Event()
    sent = await _demo_run._until_sent(send, record, stop, said.append, first_wait=0.01)
    assert sent is True
    assert tries == [record] * 3
    assert [line.split(";")[1] for line in said] == [
        " trying it again in 0.01 s",
        " trying it again in 0.02 s",
    ]


async def test_a_send_kafka_may_have_taken_is_said_to_be_sent_again_under_its_id() -> None:
    """The SDK's "it is not sent again" was followed by "trying it again in 1 s": the demo's
    line says that it, not the SDK, sends the record again, and why that is safe."""
    said: list[str] = []
    tries: list[dict[str, Any]] = []

    async def send(given: dict[str, Any]) -> None:
        tries.append(given)
        if len(tries) == 1:
            raise SendUnconfirmed(
                "wmp event: Kafka did not answer within 30 s; it is not sent again, but Kafka "
                "may have received it",
                event_ids=("7be2e9b7-0000-4000-8000-000000000001",),
            )

    record = {"event_id": "7be2e9b7-0000-4000-8000-000000000001"}
    assert await _demo_run._until_sent(send, record, asyncio.Event(), said.append, first_wait=0.01)
    assert tries == [record] * 2
    assert said == [
        "agencies: wmp event: Kafka did not answer within 30 s; it is not sent again, but Kafka "
        "may have received it; the demo, not the SDK, sends it again in 0.01 s under the same id: "
        "if Kafka had it, that copy is refused as a replay"
    ]


async def test_the_agencies_stop_trying_when_the_demo_stops_and_other_errors_end_it() -> None:
    stop = asyncio.Event()

    async def down(_: dict[str, Any]) -> None:
        stop.set()  # the demo is told to stop while Kafka is away
        raise TransportError("Kafka did not answer")

    assert await _demo_run._until_sent(down, {}, stop, lambda _: None, first_wait=5) is False

    async def refused(_: dict[str, Any]) -> None:
        raise UsageError("the party has no live signing key")

    with pytest.raises(UsageError):
        await _demo_run._until_sent(refused, {}, asyncio.Event(), lambda _: None)


async def test_the_agencies_send_a_consent_record_again_under_the_id_it_first_had() -> None:
    """A consent record's id is the publisher's to make unless given: made afresh on each try,
    a copy Kafka had taken after all would be filed, and audited, twice."""
    ids: list[str | None] = []

    class Consents:
        async def publish_consent(self, _record: Any, *, record_id: str | None = None) -> None:
            ids.append(record_id)
            if len(ids) == 1:
                raise TransportError("publishing to accord.consent: Kafka did not answer")

    pub: Any = Consents()
    said: list[str] = []
    assert await _demo_run._consent_until_sent(pub, {}, asyncio.Event(), said.append) is True
    assert len(ids) == 2
    assert ids[0] is not None
    assert ids[0] == ids[1]
    assert len(said) == 1
