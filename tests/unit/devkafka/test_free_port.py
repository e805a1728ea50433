"""``free_port`` picks below the kernel's ephemeral range, so no outgoing connection (of this
process or another) can take the port before a server binds it."""

from __future__ import annotations

import socket
from pathlib import Path
from types import SimpleNamespace

import pytest

from broker.devkafka import _broker, free_port


def test_a_free_port_is_below_the_ephemeral_range_and_can_be_bound() -> None:
    low = _broker._ephemeral_low()
    if low is None:
        pytest.skip("the kernel's ephemeral range is not readable here (not Linux)")
    for _ in range(20):
        port = free_port()
        assert 20_000 <= port < low
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_a_taken_port_is_never_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    free = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        picks = iter([taken, taken, free])
        monkeypatch.setattr(_broker, "_GIVEN", set())  # free was handed out just above
        monkeypatch.setattr(_broker, "_ephemeral_low", lambda: 60_000)
        monkeypatch.setattr(_broker, "random", SimpleNamespace(randrange=lambda *_: next(picks)))
        assert free_port() == free
        assert next(picks, None) is None  # both taken picks were tried and passed over


def test_a_port_is_handed_out_once_though_nothing_bound_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A three-node cluster asks for nine ports before it binds any: no two the same."""
    first, other, third = free_port(), free_port(), free_port()
    monkeypatch.setattr(_broker, "_GIVEN", {first, other})  # as if third were not yet given
    picks = iter([first, first, other, third])
    monkeypatch.setattr(_broker, "_ephemeral_low", lambda: 60_000)
    monkeypatch.setattr(_broker, "random", SimpleNamespace(randrange=lambda *_: next(picks)))
    assert free_port() == third
    assert next(picks, None) is None  # the ports already handed out were passed over


def test_without_a_known_ephemeral_range_the_kernel_picks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(_broker, "_EPHEMERAL_RANGE", tmp_path / "absent")
    assert _broker._ephemeral_low() is None
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
