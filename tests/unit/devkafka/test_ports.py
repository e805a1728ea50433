"""The embedded node's ports: a move reaches every principal's client files, and a running
node is never said to move."""

from __future__ import annotations

import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.devkafka import EmbeddedKafka
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
        assert (st.running, st.bootstrap) == (True, "127.0.0.1:9092")
