"""The embedded node's ports: a move reaches every principal's client files, a running node
is never said to move, and a taken port's error gives advice that can work."""

from __future__ import annotations

import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.devkafka import EmbeddedKafka, _broker, free_port
from broker.errors import DevKafkaError
from broker.kafka import read_client_file, write_client_files


def test_starting_on_a_new_port_points_every_principals_client_files_at_it(
    tmp_path: Path,
) -> None:
    first = EmbeddedKafka(tmp_path, home=tmp_path, port=9092)
    first._write_config()  # what start() does before launching the JVM
    clients = tmp_path / "clients"
    write_client_files(
        clients, "cog-tipton", bootstrap=first.bootstrap, password="pw", ca_file=None
    )
    (clients / "notes.txt").write_text("bootstrap.servers=left alone\n")
    before = read_client_file(clients / "cog-tipton.librdkafka.conf")

    moved = EmbeddedKafka(tmp_path, home=tmp_path, port=9200)
    moved._write_config()

    after = read_client_file(clients / "cog-tipton.librdkafka.conf")
    assert after == {**before, "bootstrap.servers": "127.0.0.1:9200"}  # only that key
    java = (clients / "cog-tipton.properties").read_text()
    assert "bootstrap.servers=127.0.0.1:9200\n" in java
    assert 'username="cog-tipton" password="pw"' in java
    for name in ("admin.properties", "cog-tipton.properties", "cog-tipton.librdkafka.conf"):
        path = clients / name
        assert "127.0.0.1:9200" in path.read_text(), name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
    assert (clients / "notes.txt").read_text() == "bootstrap.servers=left alone\n"
    assert not list(clients.glob(".*.tmp"))
    assert EmbeddedKafka(tmp_path, home=tmp_path).bootstrap == "127.0.0.1:9200"


def test_a_new_folders_controller_takes_the_next_port_and_the_status_says_so(
    tmp_path: Path,
) -> None:
    """``up --port N`` takes N + 1 as well: said, so that a port clash there is no surprise."""
    node = EmbeddedKafka(tmp_path, home=tmp_path, port=9200)
    node._write_config()
    assert node.status().controller_port == 9201
    assert (tmp_path / "ports").read_text() == "port=9200\ncontroller_port=9201\n"
    moved = EmbeddedKafka(tmp_path, home=tmp_path, port=9300)
    assert moved.status().controller_port == 9201  # kept by the folder


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Path]:
    """A data folder whose node runs on 9092: a stand-in process with the node's command line."""
    (tmp_path / "security").write_text("SASL_SSL")
    (tmp_path / "ports").write_text("port=9092\ncontroller_port=9093\n")
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "kafka.Kafka",
         str(tmp_path / "server.properties")],
    )  # fmt: skip
    (tmp_path / "kafka.pid").write_text(str(proc.pid))
    yield tmp_path
    proc.kill()
    proc.wait()


def test_up_with_another_port_while_the_node_runs_is_refused(running: Path) -> None:
    with pytest.raises(DevKafkaError, match=r"already runs on port 9092; stop it") as err:
        EmbeddedKafka(running, home=running, port=9200).start()
    assert "\n" not in str(err.value)
    assert (running / "ports").read_text() == "port=9092\ncontroller_port=9093\n"


def test_up_on_the_running_nodes_own_port_or_none_reports_it(running: Path) -> None:
    for port in (None, 9092):
        st = EmbeddedKafka(running, home=running, port=port).start()
        assert (st.running, st.bootstrap, st.controller_port) == (True, "127.0.0.1:9092", 9093)


@pytest.fixture
def taken() -> Iterator[int]:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield busy.getsockname()[1]


def test_a_taken_client_port_says_how_to_start_on_another(tmp_path: Path, taken: int) -> None:
    with pytest.raises(DevKafkaError) as err:
        EmbeddedKafka(tmp_path, home=tmp_path, port=taken).start()
    # 'accord demo' has no --port: the advice is a command that works for it too.
    assert "'accord kafka up --port N'" in str(err.value)
    assert "accord demo" in str(err.value)


def test_a_taken_saved_controller_port_is_named_and_another_port_is_not_the_advice(
    tmp_path: Path, taken: int
) -> None:
    (tmp_path / "ports").write_text(f"port={free_port()}\ncontroller_port={taken}\n")
    for port in (None, free_port()):  # --port does not change a folder's controller port
        with pytest.raises(DevKafkaError) as err:
            EmbeddedKafka(tmp_path, home=tmp_path, port=port).start()
        message = str(err.value)
        assert f"the controller's port {taken} on 127.0.0.1," in message
        assert f"kept by the data folder {tmp_path}" in message
        assert "another data folder" in message
        assert "--port" not in message


def test_a_new_folders_taken_controller_port_is_the_client_port_plus_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_broker, "_port_in_use", lambda port: port == 20_001)
    with pytest.raises(
        DevKafkaError, match=r"20001 on 127.0.0.1 \(the client port \+ 1\).*--port N"
    ):
        EmbeddedKafka(tmp_path, home=tmp_path, port=20_000).start()
