"""The flag service's record of its withdrawn-id markers' keep, kept across restarts.

A shorter keep read from the topics' settings applies only once it has passed since the
change (``WithdrawnIds.change`` has the argument): until then the keep it replaced holds.
That delay must outlive the process, or a restart within it would drop markers whose
records a topic may still hold. So the service keeps, in its datadir, one small JSON file
(written atomically, mode 0600: it holds no personal data, but is the service's own):

- ``keep``: the settings' keep when last read (seconds, null for good), so that settings
  lowered while the service was stopped are held as a lowering read at start;
- ``held``: each delay not yet over, as ``[until, keep]`` (the time it ends, in seconds of
  the service's clock, and the keep that holds until then, null for good).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

__all__ = ["FILE", "Held", "load_held", "save_held"]

#: The file's name in the flag service's datadir.
FILE: Final = "withdrawn-keep.json"
_VERSION: Final = 1
_MODE: Final = 0o600


@dataclass(frozen=True, slots=True)
class Held:
    """What the file says: the settings' keep last read, and the delays saved then."""

    keep: float | None
    held: tuple[tuple[float, float | None], ...]


def load_held(path: Path) -> Held | None:
    """The file's record; None when there is none (the service's first start with it).
    ``ValueError`` when it cannot be read or is not in the expected form."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueError(type(exc).__name__) from None
    data = json.loads(text)  # a JSONDecodeError is a ValueError
    if not isinstance(data, dict) or data.get("v") != _VERSION or "keep" not in data:
        raise ValueError("not-a-keep-record")
    held = data.get("held")
    if not isinstance(held, list) or not all(_pair(h) for h in held):
        raise ValueError("not-a-keep-record")
    return Held(_keep(data["keep"]), tuple((float(u), _keep(k)) for u, k in held))


def save_held(path: Path, keep: float | None, held: list[tuple[float, float | None]]) -> None:
    """Write the record atomically (temporary file, fsync, rename), mode 0600 from birth;
    ``OSError`` raised."""
    body = json.dumps({"v": _VERSION, "keep": keep, "held": [list(h) for h in held]})
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, _MODE)
    try:
        os.fchmod(fd, _MODE)
        os.write(fd, (body + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)


# Times and keeps a datetime can hold: a larger one (or inf, nan, which json reads) would
# fail later, in the middle of the service's start, as a traceback.
_LIMIT: Final = 253402300799.0  # 9999-12-31T23:59:59Z


def _number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and abs(value) <= _LIMIT
    )


def _pair(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and _number(value[0])
        and (value[1] is None or _number(value[1]))
    )


def _keep(value: Any) -> float | None:
    if value is None:
        return None
    if not _number(value) or value <= 0:
        raise ValueError("not-a-keep-record")
    return float(value)
