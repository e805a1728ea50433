"""``accord kafka up``: a PLAINTEXT node is warned about at every start, a secured one never;
a client port in the kernel's ephemeral range is warned about once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from broker.cli import _kafka, main
from broker.config import KafkaSecurity
from broker.devkafka import BrokerStatus, EmbeddedKafka, _broker


class _Node:
    def __init__(self, security: KafkaSecurity, tmp: Path) -> None:
        self.status = BrokerStatus(
            running=True, pid=4242, bootstrap="127.0.0.1:9092", data_dir=tmp, log=tmp / "log",
            security=security, clients_dir=tmp / "clients", controller_port=9093,
        )  # fmt: skip

    def start(self) -> BrokerStatus:
        return self.status

    def port_warning(self) -> None:
        return None


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


def test_up_on_a_port_in_the_ephemeral_range_warns_once_before_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Clients retrying such a port during an outage can take it: said before the start."""
    span = tmp_path / "ip_local_port_range"
    span.write_text("32768\t60999\n")
    monkeypatch.setattr(_broker, "_EPHEMERAL_RANGE", span)
    node = EmbeddedKafka(tmp_path, home=tmp_path, port=41092)
    started: list[str] = []

    def start() -> BrokerStatus:
        started.append(capsys.readouterr().err)  # what was said before starting
        return _Node(KafkaSecurity.SASL_SSL, tmp_path).status

    monkeypatch.setattr(node, "start", start)
    monkeypatch.setattr(_kafka, "_node", lambda *_, **__: node)
    main(["kafka", "up", "--port", "41092"])
    warning = node.port_warning()
    assert warning is not None
    assert started == [warning + "\n"]
    assert capsys.readouterr().err == ""
