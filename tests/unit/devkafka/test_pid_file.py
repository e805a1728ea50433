"""``kafka.pid`` is trusted only while it names this data folder's own Kafka node: a number
left from before a reboot may belong to any process by now."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.devkafka import EmbeddedKafka, _broker
from broker.errors import DevKafkaError


@pytest.fixture
def spawn() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


def _sleeper(spawn: list[subprocess.Popen[bytes]], *args: str) -> subprocess.Popen[bytes]:
    """A process that idles; ``args`` make its command line look like whatever a test needs."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", *args])
    spawn.append(proc)
    return proc


def _node(data: Path) -> EmbeddedKafka:
    return EmbeddedKafka(data, home=data)


def test_a_pid_file_naming_an_unrelated_process_is_stale_and_down_leaves_that_process_alone(
    tmp_path: Path, spawn: list[subprocess.Popen[bytes]]
) -> None:
    other = _sleeper(spawn)
    (tmp_path / "kafka.pid").write_text(str(other.pid))
    node = _node(tmp_path)
    assert not node.status().running
    assert not (tmp_path / "kafka.pid").exists()
    (tmp_path / "kafka.pid").write_text(str(other.pid))
    assert node.stop(timeout=2) is False
    assert other.poll() is None  # still running: never signalled


def test_a_kafka_node_of_another_data_folder_is_not_this_folders(
    tmp_path: Path, spawn: list[subprocess.Popen[bytes]]
) -> None:
    elsewhere = tmp_path / "other" / "server.properties"
    other = _sleeper(spawn, "kafka.Kafka", str(elsewhere))
    data = tmp_path / "mine"
    data.mkdir()
    (data / "kafka.pid").write_text(str(other.pid))
    node = _node(data)
    assert node.stop(timeout=2) is False
    assert other.poll() is None


def test_this_folders_node_is_found_by_its_command_line_and_stopped(
    tmp_path: Path, spawn: list[subprocess.Popen[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    # Started with a relative path, from this directory: still this folder's node.
    kafka = _sleeper(spawn, "kafka.Kafka", "data/server.properties")
    data = tmp_path / "data"
    data.mkdir()
    (data / "kafka.pid").write_text(str(kafka.pid))
    node = _node(data)
    st = node.status()
    assert (st.running, st.pid) == (True, kafka.pid)
    assert node.stop(timeout=5) is True
    assert kafka.wait(timeout=5) is not None
    assert not (data / "kafka.pid").exists()


def test_start_with_a_stale_pid_file_starts_a_node_rather_than_reporting_one(
    tmp_path: Path, spawn: list[subprocess.Popen[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    other = _sleeper(spawn)
    (tmp_path / "kafka.pid").write_text(str(other.pid))
    # Every port taken: reaching that check shows start() did not return the stale pid.
    monkeypatch.setattr(_broker, "_port_in_use", lambda _port: True)
    with pytest.raises(DevKafkaError, match="already in use"):
        _node(tmp_path).start()
    assert other.poll() is None
