"""The embedded node's kafka.log rolls by size and keeps a bounded number of files: every
refused request is a line in it, and a client retrying without a grant writes megabytes."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from broker.devkafka import EmbeddedKafka, _broker, _logging
from broker.errors import DevKafkaError
from tests.conftest import start_kafka


def test_a_node_that_logs_past_the_size_rolls_and_keeps_at_most_the_files_allowed(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A start logs hundreds of kilobytes: at 16 KB a file, it rolls many times over.
    monkeypatch.setattr(_logging, "LOG_FILE_BYTES", 16 * 1024)
    monkeypatch.setattr(_logging, "LOG_FILES", 3)
    node = start_kafka(tmp_path_factory, "rolls")
    try:
        logs = sorted(p.name for p in node.data_dir.glob("kafka.log*"))
        assert logs == ["kafka.log", "kafka.log.1", "kafka.log.2"]
        for name in logs:  # a line may pass the size; never a whole start's log
            assert (node.data_dir / name).stat().st_size < 64 * 1024
        # Still the node's own log: its last start line is in the newest file.
        assert "Kafka Server started" in (node.data_dir / "kafka.log").read_text()
    finally:
        node.stop()


def test_the_real_sizes_are_twenty_megabytes_ten_files() -> None:
    config = _logging.log4j_config(Path("/data/kafka.log"))
    assert "appender.file.type = RollingFile" in config
    assert f"policies.size.size = {20 * 1024 * 1024}" in config
    assert "strategy.max = 9" in config  # kafka.log and kafka.log.1 to .9


def test_a_bind_failure_after_the_log_rolled_is_still_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The log was bigger before the start than after its roll: the new file is read whole."""
    monkeypatch.setattr(_broker, "ensure_kafka_jars", lambda *_: tmp_path / "jars")
    monkeypatch.setattr(_broker.shutil, "which", lambda *_: "/usr/bin/java")
    monkeypatch.setattr(
        _broker.subprocess, "run", lambda cmd, **_: subprocess.CompletedProcess(cmd, 0, "", "")
    )
    monkeypatch.setattr(_broker, "_port_in_use", lambda _: False)
    node = EmbeddedKafka(tmp_path / "data", home=tmp_path, port=19_092)
    node.data_dir.mkdir(parents=True)
    node.log_path.write_text("[earlier] INFO an earlier start\n" * 2000)

    class RollsThenExits:
        pid = 4_000_000
        returncode = 1

        def __init__(self, *_: Any, **__: Any) -> None:
            node.log_path.rename(node.log_path.with_name("kafka.log.1"))
            node.log_path.write_text(
                "org.apache.kafka.common.KafkaException: Socket server failed to bind to"
                " 127.0.0.1:19092: Address already in use.\n"
                "Caused by: java.net.BindException: Address already in use\n"
            )

        def poll(self) -> int:
            return 1

    monkeypatch.setattr(_broker.subprocess, "Popen", RollsThenExits)
    with pytest.raises(DevKafkaError, match=r"port 19092 on 127\.0\.0\.1 is already in use"):
        node.start()
