from __future__ import annotations

import importlib
import logging
import re
import sqlite3
import sys

import typer

# typer vendors click (typer._click) and re-exports only Exit and Abort publicly; usage errors
# must be caught from the vendored module to turn them into one line.
from typer._click import exceptions as click_exc

from broker.cli._logging import default_logging
from broker.errors import AccordError

# Each module registers its commands; the order is the order in `accord --help`.
_COMMAND_MODULES = (
    "_kafka",
    "_keys",
    "_policy",
    "_publish",
    "_gateway",
    "_tail",
    "_worker",
    "_audit",
    "_console",
    "_desk",
    "_demo",
    "_deploy",
)


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="accord",
        help="Accord: secure information sharing for children's early help and safeguarding.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
    for name in _COMMAND_MODULES:
        module = importlib.import_module(f"broker.cli.{name}")
        module.register(app)
    return app


# Modules of the `server` extra (pyproject.toml): a command that needs one, run from the
# SDK-only base install, says which extra to add instead of failing with a traceback.
_SERVER_MODULES = frozenset(
    {"yaml", "cel", "prometheus_client", "psycopg", "fastapi", "uvicorn", "jinja2",
     "multipart", "python_multipart", "argon2", "faker", "starlette", "confluent_kafka",
     "faust"}
)  # fmt: skip


def _fail(message: str, code: int) -> None:
    # One line, always: collapse any newline a lower layer put into its message.
    line = " ".join(message.split())
    print(f"accord: error: {line}", file=sys.stderr)  # noqa: T201  # the CLI's one output channel for errors
    sys.exit(code)


# What click quotes back of the command line: an option's value, and extra arguments. Both
# may be personal data (an NHS number typed with spaces is three arguments; a name given as
# a --reason), and stderr ends up in terminals' scrollback, shell logs and tickets.
_QUOTED_VALUE = re.compile(r"""(?:'[^']*'|"[^"]*")(?= is not)""")
_EXTRA = re.compile(r"^Got unexpected extra argument(?:s|\(s\))? \((.*)\)$")


def _without_values(message: str) -> str:
    if message.startswith("Invalid value for"):
        message = _QUOTED_VALUE.sub("the value given", message.replace("Value error, ", ""))
    if match := _EXTRA.match(message):
        count = len(match.group(1).split())
        return f"got {count} unexpected extra argument(s) (quote a value with spaces)"
    return message


def _failure(exc: OverflowError | OSError | sqlite3.DatabaseError) -> tuple[str, int]:
    """The one line, and the exit code, for what the user's files or values caused."""
    if isinstance(exc, OverflowError):
        # A date or a number past what Python's dates hold (--until 9999-12-31 plus a day,
        # --grace-days 1e308): the user's, so one line, without the value.
        return "a date or number given is out of range", 2
    if isinstance(exc, OSError):
        # Files the user named that cannot be read or written: say which, not how deep.
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror or exc}{where}", 1
    # sqlite3's messages name no value. Stores that know which database it is say more
    # (the audit index: rebuild it from the topic); here it may be any, a desk's included,
    # which no topic rebuilds. Its other errors (misuse, constraints) are bugs: raised.
    if type(exc) not in (sqlite3.DatabaseError, sqlite3.OperationalError):
        raise exc
    return f"a SQLite database could not be used ({exc})", 1


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``accord`` console script."""
    app = build_app()
    default_logging()
    # aiokafka logs each failed connection attempt, before our own one-line error says the
    # same. Long-running commands (worker, console) turn it back on in configure_logging.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        from broker.config import check_environment

        check_environment()  # a misspelt ACCORD_* setting is refused, never passed over
        rv = app(args=argv, standalone_mode=False, prog_name="accord")
    except click_exc.NoArgsIsHelpError as exc:
        print(exc.ctx.get_help() if exc.ctx else exc.format_message())  # noqa: T201  # help text
        sys.exit(0)
    except click_exc.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        _fail(f"{_without_values(exc.format_message())}{hint}", 2)
    except typer.Abort:
        _fail("aborted", 130)
    except click_exc.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except AccordError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if top not in _SERVER_MODULES:
            raise
        command = " ".join(a for a in (argv if argv is not None else sys.argv[1:])[:2])
        _fail(
            f"'accord {command}' needs the broker, not only the SDK (module {top} is "
            "missing): install accord-broker in its place (README, Installing without the "
            "repository; it is not on PyPI)",
            2,
        )
    except (OverflowError, OSError, sqlite3.DatabaseError) as exc:
        _fail(*_failure(exc))
    if isinstance(rv, int) and rv != 0:
        sys.exit(rv)
