"""A node that exits while starting because a port was taken says which port and why; a client
port in the kernel's ephemeral range is warned about at ``accord kafka up``."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from broker.devkafka import EmbeddedKafka, _broker
from broker.errors import DevKafkaError

# What Kafka 4.1 writes to kafka.log when its client port is taken (the stack trimmed).
_BIND_LOG = (
    "[2026-12-07 18:02:11,412] ERROR [KafkaRaftServer nodeId=1] Fatal error during startup."
    " (kafka.server.KafkaRaftServer)\n"
    "org.apache.kafka.common.KafkaException: Socket server failed to bind to"
    " 127.0.0.1:{port}: Address already in use.\n"
    "\tat kafka.network.Acceptor.openServerSocket(SocketServer.scala:634)\n"
    "Caused by: java.net.BindException: Address already in use\n"
    "\tat java.base/sun.nio.ch.Net.bind0(Native Method) ~[?:?]\n"
)


@pytest.fixture
def ephemeral(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel's default ephemeral range, whatever this machine's is."""
    span = tmp_path / "ip_local_port_range"
    span.write_text("32768\t60999\n")
    monkeypatch.setattr(_broker, "_EPHEMERAL_RANGE", span)


def _exits_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log: str, *, port: int
) -> DevKafkaError:
    """The error of a start whose node appends ``log`` to kafka.log, then exits (1)."""
    monkeypatch.setattr(_broker, "ensure_kafka_jars", lambda *_: tmp_path / "jars")
    monkeypatch.setattr(_broker.shutil, "which", lambda *_: "/usr/bin/java")
    monkeypatch.setattr(
        _broker.subprocess, "run", lambda cmd, **_: subprocess.CompletedProcess(cmd, 0, "", "")
    )
    monkeypatch.setattr(_broker, "_port_in_use", lambda _: False)  # taken only at the bind
    node = EmbeddedKafka(tmp_path / "data", home=tmp_path, port=port)

    class Exits:
        pid = 4_000_000
        returncode = 1

        def __init__(self, *_: Any, **__: Any) -> None:
            with node.log_path.open("a") as fh:
                fh.write(log)

        def poll(self) -> int:
            return 1

    monkeypatch.setattr(_broker.subprocess, "Popen", Exits)
    with pytest.raises(DevKafkaError) as err:
        node.start()
    assert "\n" not in str(err.value)
    return err.value


@pytest.mark.usefixtures("ephemeral")
def test_a_port_taken_at_the_bind_is_named_with_the_ephemeral_range_as_its_likely_cause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    err = _exits_writing(tmp_path, monkeypatch, _BIND_LOG.format(port=41092), port=41092)
    message = str(err)
    assert message.startswith(
        "Kafka exited (1) while starting: port 41092 on 127.0.0.1 is already in use "
        "(java.net.BindException); it lies in the ephemeral port range (32768-60999)"
    )
    assert "pick a port below 32768" in message
    assert message.endswith(f"see {tmp_path / 'data' / 'kafka.log'}")


@pytest.mark.usefixtures("ephemeral")
def test_a_taken_port_below_the_range_is_named_without_the_ephemeral_story(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = str(_exits_writing(tmp_path, monkeypatch, _BIND_LOG.format(port=9092), port=9092))
    assert "port 9092 on 127.0.0.1 is already in use (java.net.BindException)" in message
    assert "ephemeral" not in message


@pytest.mark.usefixtures("ephemeral")
def test_a_taken_controller_port_is_named_as_the_controllers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = str(_exits_writing(tmp_path, monkeypatch, _BIND_LOG.format(port=9093), port=9092))
    assert "the controller's port 9093 on 127.0.0.1 is already in use" in message
    assert "--data DIR" in message


def test_a_bind_failure_of_an_earlier_start_is_not_blamed_for_this_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kafka.log is appended to across starts: only this start's lines say why it failed."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "kafka.log").write_text(_BIND_LOG.format(port=9092))
    message = str(_exits_writing(tmp_path, monkeypatch, "[...] ERROR out of memory\n", port=9092))
    assert message == f"Kafka exited (1) while starting; see {tmp_path / 'data' / 'kafka.log'}"


@pytest.mark.usefixtures("ephemeral")
def test_a_client_port_in_the_ephemeral_range_is_warned_about_in_one_line(
    tmp_path: Path,
) -> None:
    warning = EmbeddedKafka(tmp_path, home=tmp_path, port=41092).port_warning()
    assert warning is not None
    assert "\n" not in warning
    assert warning.startswith(
        "WARNING: port 41092 lies in this machine's ephemeral port range (32768-60999"
    )
    assert "after an outage" in warning
    assert "pick a port below 32768" in warning
    for port in (9092, 32767, 61000):
        assert EmbeddedKafka(tmp_path, home=tmp_path, port=port).port_warning() is None


def test_no_warning_where_the_ephemeral_range_is_not_known(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_broker, "_EPHEMERAL_RANGE", tmp_path / "absent")
    assert EmbeddedKafka(tmp_path, home=tmp_path, port=41092).port_warning() is None
