"""The tests' JVM options reach both of a node's JVMs; a node started without them (``accord
kafka up``, the demo, the benchmarks) keeps the default flags; the start probes Kafka only
once its port accepts connections."""

from __future__ import annotations

import shlex
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from broker.devkafka import EmbeddedKafka, _broker, free_port
from tests.kafka_jvm import QUICK_JIT, _usable

DEFAULTS = ["-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true"]


class _Exits:
    """A node process that has exited at once: start stops waiting at its first look."""

    pid = 4_000_000
    returncode = 1

    def __init__(self, cmd: list[str], **_: Any) -> None:
        self.cmd = cmd

    def poll(self) -> int:
        return 1


def _without_a_jdk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No jars, no java: the storage formatter 'succeeds' without running."""
    monkeypatch.setattr(_broker, "ensure_kafka_jars", lambda *_: tmp_path / "jars")
    monkeypatch.setattr(_broker.shutil, "which", lambda *_: "/usr/bin/java")
    monkeypatch.setattr(
        _broker.subprocess, "run", lambda cmd, **_: subprocess.CompletedProcess(cmd, 0, "", "")
    )


def _expanded(cmd: list[str]) -> list[str]:
    """``cmd`` with its launcher argument files read, as the JVM sees it."""
    out: list[str] = []
    for arg in cmd:
        out += shlex.split(Path(arg[1:]).read_text()) if arg.startswith("@") else [arg]
    return out


def _commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> list[list[str]]:
    """The command lines ``start`` runs: the storage formatter's, then the node's."""
    ran: list[list[str]] = []

    def run(cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        ran.append(_expanded(cmd))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    def popen(cmd: list[str], **kw: Any) -> _Exits:
        ran.append(cmd)
        return _Exits(cmd, **kw)

    _without_a_jdk(tmp_path, monkeypatch)
    monkeypatch.setattr(_broker.subprocess, "run", run)
    monkeypatch.setattr(_broker.subprocess, "Popen", popen)
    node = EmbeddedKafka(tmp_path / "data", home=tmp_path, port=free_port(), **kwargs)
    with pytest.raises(_broker.DevKafkaError, match="exited"):
        node.start()
    return ran


def _before_classpath(cmd: list[str]) -> list[str]:
    return cmd[1 : cmd.index("-cp")]


def test_jvm_options_reach_the_formatter_and_the_node_after_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = [QUICK_JIT, "-XX:SharedArchiveFile=/cache/kafka.jsa"]
    fmt, node = _commands(tmp_path, monkeypatch, jvm_options=options)
    assert "kafka.tools.StorageTool" in fmt
    assert _before_classpath(fmt) == options
    assert "kafka.Kafka" in node
    flags = _before_classpath(node)
    assert flags[-2:] == options  # after the defaults: they may override one
    assert all(flag in flags for flag in DEFAULTS)


def test_a_node_started_without_jvm_options_keeps_the_default_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fmt, node = _commands(tmp_path, monkeypatch)
    assert _before_classpath(fmt) == []
    flags = _before_classpath(node)
    assert flags[:2] == ["-Xms768m", "-Xmx768m"]
    assert flags[2:5] == DEFAULTS
    assert len(flags) == 7  # and the two naming the data folder's log settings
    assert not any("Tiered" in flag or "Archive" in flag for flag in flags)


def test_start_probes_kafka_only_once_its_port_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    probes: list[bool] = []
    listener: list[socket.socket] = []

    class Runs(_Exits):
        def poll(self) -> None:  # type: ignore[override]
            return None

    def sleep(seconds: float) -> None:
        assert seconds <= 0.1  # a node that is up is noticed within a tenth of a second
        if len(listener) == 0 and probes == []:
            sock = socket.socket()
            sock.bind(("127.0.0.1", port))
            sock.listen()
            listener.append(sock)

    def answers(settings: object) -> bool:
        probes.append(bool(listener))
        return True

    _without_a_jdk(tmp_path, monkeypatch)
    monkeypatch.setattr(_broker.subprocess, "Popen", Runs)
    monkeypatch.setattr(_broker.time, "sleep", sleep)
    monkeypatch.setattr(_broker, "_answers_metadata", answers)
    try:
        EmbeddedKafka(tmp_path / "data", home=tmp_path, port=port).start(timeout=10)
    finally:
        for sock in listener:
            sock.close()
    assert probes == [True]  # none while nothing listened


@pytest.mark.skipif(shutil.which("java") is None, reason="no JDK here")
def test_an_archive_the_jvm_cannot_map_is_not_taken_for_a_class_archive(tmp_path: Path) -> None:
    bad = tmp_path / "kafka.jsa"
    bad.write_bytes(b"not a class-data archive" * 100)
    java = shutil.which("java")
    assert java is not None
    assert not _usable(java, str(tmp_path / "*"), bad)
