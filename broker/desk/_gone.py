"""The event ids a window state remembers as gone, each with the time it went.

A child's state (``_flagging``) and a household's (``_household``) keep, under ``gone``,
the ids of records that left them: withdrawn by a notice, or trimmed out of the window. A
record whose id is there is ignored when it comes again, after a crash, a replay or a group
reset to the earliest offset, so a withdrawn record never counts again and a trimmed one
never flags twice.

An id is needed only while the record could still reach the step, exactly as a withdrawn-id
marker is (:mod:`._withdrawn` has the argument): it goes in when the step has the record or
its notice in hand, so at or after the record's timestamp, and Kafka holds no copy of the
record a keep after that. So each id carries the time it went (whole seconds of the
service's clock) and is forgotten once older than the markers' keep (:class:`Forget`; None
keeps it for good, as every id was until 2026-12-06, when ``gone`` grew by about 40 bytes
per id for the state's life).

States of format 1 hold ``gone`` as a plain list of ids: each is dated when the state is
first written again (format 2), as an undated marker is: never forgotten sooner than an id
that went then.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["STATE_VERSION", "Forget", "dated", "forget", "went"]

#: A state's format: 2 since ``gone`` maps each id to the time it went (1: a list of ids).
STATE_VERSION = 2


@dataclass(frozen=True, slots=True)
class Forget:
    """The time a state is written at (seconds) and how long a gone id is kept (seconds;
    None: for good)."""

    now: int
    keep: float | None = None


def dated(state: Mapping[str, Any], now: int) -> dict[str, int]:
    """A copy of ``state``'s gone ids with their times; a format-1 list's, dated ``now``."""
    gone = state.get("gone") or {}
    if isinstance(gone, dict):
        return dict(gone)
    return dict.fromkeys((str(e) for e in gone), now)


def went(gone: dict[str, int], event_ids: Iterable[str], now: int) -> None:
    """Add ``event_ids`` as gone ``now``; an id already there keeps its time."""
    for event_id in event_ids:
        gone.setdefault(event_id, now)


def forget(gone: dict[str, int], when: Forget) -> dict[str, int]:
    """``gone`` without the ids older than the keep. In the order they went, from the first:
    one out of order (merged from another state) waits behind a younger one, kept longer,
    never shorter, and a state written often does not scan its whole list each time."""
    if when.keep is None:
        return gone
    horizon = when.now - when.keep
    old = 0
    for t in gone.values():
        if t >= horizon:
            break
        old += 1
    if not old:
        return gone
    return dict(list(gone.items())[old:])
