"""``accord kafka up``: a PLAINTEXT node is warned about at every start, a secured one never."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from broker.cli import _kafka, main
from broker.config import KafkaSecurity
from broker.devkafka import BrokerStatus


class _Node:
    def __init__(self, security: KafkaSecurity, tmp: Path) -> None:
        self.status = BrokerStatus(
            running=True, pid=4242, bootstrap="127.0.0.1:9092", data_dir=tmp, log=tmp / "log",
            security=security, clients_dir=tmp / "clients", controller_port=9093,
        )  # fmt: skip

    def start(self) -> BrokerStatus:
        return self.status


@pytest.mark.parametrize("security", list(KafkaSecurity))
@pytest.mark.parametrize("argv", [["kafka", "up"], ["kafka", "up", "--insecure-plaintext"]])
def test_the_node_says_plaintext_at_every_start_not_only_the_first(
    security: KafkaSecurity, argv: list[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """A folder made PLAINTEXT stays so; a later plain ``up`` must still say it, loudly."""

    def node(*_: Any, **__: Any) -> _Node:
        return _Node(security, tmp_path)

    monkeypatch.setattr(_kafka, "_node", node)
    main(argv)
    out, err = capsys.readouterr()
    assert out.startswith(
        "kafka running (pid 4242) at 127.0.0.1:9092, controller on 127.0.0.1:9093"
    )
    warned = err == _kafka.PLAINTEXT_WARNING + "\n"
    assert warned is (security is KafkaSecurity.PLAINTEXT)
    assert warned or err == ""
