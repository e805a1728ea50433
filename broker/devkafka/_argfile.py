"""A JVM's secret arguments kept off its command line, in a launcher argument file.

Any local user can read another's ``/proc/PID/cmdline`` (``ps``), so a password is never an
argument. The JDK launcher (9+) replaces an ``@file`` argument with the arguments the file
holds, but only up to the main class: an ``@file`` after the main class reaches the program
as it is. So the file holds the main class too, with the secret arguments after it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path

# The launcher's own escapes inside double quotes (java's man page, "java Command-Line
# Argument Files"); the backslash first, or it would double the others'.
_ESCAPES = (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"))


def quote(arg: str) -> str:
    """``arg`` as one argument of an argument file, whatever it holds (``=[],`` and spaces)."""
    for char, escaped in _ESCAPES:
        arg = arg.replace(char, escaped)
    return f'"{arg}"'


@contextlib.contextmanager
def argfile(directory: Path, args: Sequence[str]) -> Iterator[str]:
    """``@path`` of a new file holding ``args`` for the launcher, removed on leaving.

    ``directory`` must be private (0700); the file is made 0600 there, never one that
    already existed (``O_EXCL``: nothing planted beforehand is written to or read).
    """
    path = directory / f".java-args-{secrets.token_hex(8)}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(" ".join(quote(arg) for arg in args) + "\n")
        yield f"@{path}"
    finally:
        path.unlink(missing_ok=True)
