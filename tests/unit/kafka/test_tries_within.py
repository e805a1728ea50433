"""tests.kafka_helpers.tries_within: a wait loop bounded by time, not by a count of tries, so
its patience does not shrink when each try (a read of a topic to its end) gets quicker."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import tests.kafka_helpers as helpers


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


@pytest.mark.parametrize("try_takes_s", [0.02, 0.5, 2.0])
def test_a_wait_keeps_trying_until_its_deadline_however_quick_each_try(
    monkeypatch: pytest.MonkeyPatch, try_takes_s: float
) -> None:
    clock = _Clock()
    monkeypatch.setattr(helpers, "time", SimpleNamespace(monotonic=clock.monotonic))
    started = clock.now
    tries = 0
    for _ in helpers.tries_within(60):
        tries += 1
        clock.now += try_takes_s
    assert 60 <= clock.now - started < 60 + try_takes_s + 1e-9
    assert tries == pytest.approx(60 / try_takes_s, abs=1)


def test_a_wait_tries_once_even_when_its_time_is_already_up() -> None:
    assert list(helpers.tries_within(0)) == [0]
