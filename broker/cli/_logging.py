"""Logging for long-running commands: JSON lines on stderr, configured once.

Accord's own lines come from structlog; the libraries' (aiokafka, asyncio, uvicorn) come
through the standard library's logging, and are rendered here as the same JSON lines, with
a repeated line held back: Kafka away for minutes makes aiokafka log the same refused
connection several times a second, which buried everything else (14,000 lines in three
minutes, seen in a review).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog
from structlog.typing import EventDict, Processor

# How often a line held back is let through again, with how many were held back since.
REPEAT_EVERY_S = 60.0
# Distinct lines remembered; the oldest is forgotten first (a flood of distinct lines is
# not held back, but costs bounded memory).
_REMEMBERED = 256


class RepeatLimit(logging.Filter):
    """Lets a line through the first time, then at most once each ``every`` seconds.

    A line is its logger, level, message as rendered and the type of the exception it
    carries, if any: libraries log unlike failures under one text (uvicorn's ``Exception in
    ASGI application``, aiokafka's ``Unexpected error in sender routine``), so a failure of a
    new kind is always written, with its traceback, however often that text came before. One
    let through after some were held back carries their number as ``accord_repeated`` (the
    JSON's ``repeated``). A run that stops is not summed up at its end: its count comes with
    the line's next appearance.
    """

    def __init__(
        self, every: float = REPEAT_EVERY_S, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.every = every
        self.clock = clock
        self._seen: dict[tuple[str, int, str, str], list[float]] = {}  # [last let through, held]
        self._lock = threading.Lock()  # handlers filter outside their own lock

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, record.getMessage(), _failure(record))
        now = self.clock()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen[0] < self.every:
                seen[1] += 1
                return False
            self._seen.pop(key, None)  # to the end: the oldest line is the first forgotten
            self._seen[key] = [now, 0]
            if len(self._seen) > _REMEMBERED:
                del self._seen[next(iter(self._seen))]
        if seen is not None and seen[1]:
            record.accord_repeated = int(seen[1])
        return True


def _failure(record: logging.LogRecord) -> str:
    """The qualified name of the exception ``record`` carries, or "" for none."""
    kind = record.exc_info[0] if isinstance(record.exc_info, tuple) else None
    return "" if kind is None else f"{kind.__module__}.{kind.__qualname__}"


def _repeated(_logger: Any, _name: str, event: EventDict) -> EventDict:
    record = event.get("_record")
    if (held := getattr(record, "accord_repeated", None)) is not None:
        event["repeated"] = held
    return event


class _JsonLines(logging.Handler):
    """The root logger's handler configure_logging installs (and replaces when called again).

    It writes to ``sys.stderr`` as it is at each line, as ``logging.lastResort`` does, not as
    it was when configured: a command run in-process (tests) has a stderr of its own.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # noqa: BLE001  # logging's own policy: a failed line is reported, not raised
            self.handleError(record)


def _shared() -> list[Processor]:
    return [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def _render() -> list[Processor]:
    return [
        # Tracebacks as data, but never their local variables: a frame's locals can hold
        # an event, a form with an NHS number, or a password.
        structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        ),
        structlog.processors.JSONRenderer(),
    ]


def default_logging() -> None:
    """Until a command configures logging: warnings and worse, as JSON lines on stderr.

    structlog's own default prints every level to stdout, where a command's output goes: an
    indexer busy beside ``accord audit subject --format json`` put its debug lines into the
    export a parent was to receive. Loggers are not cached, so a command's own
    :func:`configure_logging` later takes effect for every module's logger."""
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *_shared(), *_render()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def configure_logging(level: str = "info", *, library_logs: bool = True) -> None:
    numeric = getattr(logging, level.upper(), logging.INFO)
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *_shared(), *_render()],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # A library's record becomes its logger's name, level, time and message: never its
    # arguments or extras, so nothing but the text the library chose to write goes out.
    handler = _JsonLines()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*_shared(), structlog.stdlib.add_logger_name, _repeated],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *_render()],
        )
    )
    handler.addFilter(RepeatLimit())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _JsonLines)]:
        root.removeHandler(old)
    root.addHandler(handler)
    # Libraries' warnings and worse only (or less, if the command asked for less).
    root.setLevel(max(logging.WARNING, numeric))
    if library_logs:  # else aiokafka stays as quiet as main() left it
        logging.getLogger("aiokafka").setLevel(logging.NOTSET)  # main() quietened it
