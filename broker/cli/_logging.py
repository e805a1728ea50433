"""Logging for long-running commands: structlog JSON lines on stderr, configured once."""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(level: str = "info", *, library_logs: bool = True) -> None:
    numeric = getattr(logging, level.upper(), logging.INFO)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            # Tracebacks as data, but never their local variables: a frame's locals can hold
            # an event, a form with an NHS number, or a password.
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            ),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Libraries' stdlib logging (aiokafka) goes to stderr too, warnings and worse only.
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(name)s %(levelname)s %(message)s"
    )
    if library_logs:  # else aiokafka stays as quiet as main() left it
        logging.getLogger("aiokafka").setLevel(logging.NOTSET)  # main() quietened it
