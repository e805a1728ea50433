"""What the demo prints for another terminal, and the ports it needs, checked first.

Every command the demo prints must run as pasted into another terminal opened in the folder
the demo runs in: the ``accord`` the demo itself runs (``.venv/bin/accord`` after ``make
demo``, where ``accord`` is not on PATH), and the environment the demo relies on exported
first (its home when not the default, its keystore passphrase file, the bundle it runs).
Secrets are never printed: an ``ACCORD_`` variable holding one (a passphrase, a database
URL) is named, to be set there as it is here.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from broker.config import KafkaSecurity, KafkaSettings
from broker.errors import UsageError

__all__ = [
    "DemoShell",
    "accord_command",
    "check_port",
    "demo_users_file",
    "home_env",
    "with_port_hint",
]

# Settings whose value may be a secret, or hold one (a URL's password): named, never shown.
_SECRET = re.compile(r"PASSPHRASE(?!_FILE)|PASSWORD(?!_FILE)|SECRET|TOKEN|__DB$|__STORE$")
# Set by the demo itself for every command printed, whatever the environment says.
_OWN = ("ACCORD_HOME", "ACCORD_POLICIES", "ACCORD_KEYSTORE__PASSPHRASE_FILE")


def demo_users_file(home: Path) -> Path:
    """The demo's console accounts: a file of its own, which no real console reads (the
    console's is ``<home>/console/users.json`` unless ``ACCORD_CONSOLE__USERS_FILE`` says)."""
    return home / "demo" / "console-users.json"


def home_env(home: Path) -> dict[str, str]:
    """``ACCORD_HOME`` for another terminal, unless ``home`` is where it looks by default."""
    home = home.expanduser().absolute()
    return {} if home == Path.home() / ".cache" / "accord" else {"ACCORD_HOME": str(home)}


def accord_command(cwd: Path | None = None) -> str:
    """How to run the ``accord`` this process is, from ``cwd`` (default: here), in a new
    terminal.

    ``accord`` when PATH finds this one other than through its own folder (installed for
    the system, or a pipx link): PATH holds that folder itself only where a virtual
    environment was activated, in this terminal and not in the next. Else the entry point
    beside this interpreter, relative to ``cwd`` when under it, as the README writes it
    (``.venv/bin/accord``); else ``python -m broker`` with this interpreter.
    """
    here = (cwd or Path.cwd()).absolute()
    script = Path(sys.executable).parent / "accord"
    if not script.is_file():
        return f"{shlex.quote(sys.executable)} -m broker"
    found = shutil.which("accord")
    if (
        found is not None
        and Path(found).absolute().parent != script.absolute().parent
        and Path(found).resolve() == script.resolve()
    ):
        return "accord"
    try:
        return shlex.quote(str(script.absolute().relative_to(here)))
    except ValueError:
        return shlex.quote(str(script.absolute()))


@dataclass(frozen=True)
class DemoShell:
    """The environment another terminal needs for the demo's commands, and how to run them."""

    accord: str
    exports: dict[str, str] = field(default_factory=dict)
    # ACCORD_ variables this terminal has that hold secrets: to be set there too.
    secrets: tuple[str, ...] = ()
    cwd: Path = field(default_factory=Path.cwd)

    @classmethod
    def for_demo(
        cls,
        *,
        home: Path,
        policies: Path,
        passphrase_file: Path | None,
        kafka: KafkaSettings,
        environ: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> DemoShell:
        env = os.environ if environ is None else environ
        here = (cwd or Path.cwd()).absolute()
        exports = home_env(home)
        if passphrase_file is not None:
            exports["ACCORD_KEYSTORE__PASSPHRASE_FILE"] = str(passphrase_file.absolute())
        elif "ACCORD_KEYSTORE__PASSPHRASE_FILE" in env:
            exports["ACCORD_KEYSTORE__PASSPHRASE_FILE"] = str(
                Path(env["ACCORD_KEYSTORE__PASSPHRASE_FILE"]).expanduser().absolute()
            )
        # The bundle the demo runs, so that the desk, which never falls back to the
        # example, reads the same one from any folder.
        exports["ACCORD_POLICIES"] = str((here / policies).absolute())
        if kafka.security_protocol is KafkaSecurity.PLAINTEXT:
            # No client files to find the broker by: its address, as the demo reached it.
            exports["ACCORD_KAFKA__BOOTSTRAP"] = kafka.bootstrap
            exports["ACCORD_KAFKA__SECURITY_PROTOCOL"] = kafka.security_protocol.value
        secrets: list[str] = []
        for name, value in sorted(env.items()):
            if not name.startswith("ACCORD_") or name in _OWN or name in exports:
                continue
            if _SECRET.search(name):
                secrets.append(name)
            else:
                exports[name] = value
        return cls(accord_command(here), exports, tuple(secrets), here)

    def setup(self) -> list[str]:
        """The lines to paste first: the folder, the exports, the secrets to set."""
        lines = [f"cd {shlex.quote(str(self.cwd))}"]
        if self.exports:
            pairs = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.exports.items())
            lines.append(f"export {pairs}")
        if self.secrets:
            lines.append(f"# and set {', '.join(self.secrets)} as in the demo's terminal")
        return lines

    def run(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        """One command line: ``accord ARGS``, with ``env`` for this command only."""
        prefix = "".join(f"{k}={shlex.quote(v)} " for k, v in (env or {}).items())
        return prefix + " ".join([self.accord, *(shlex.quote(a) for a in args)])


def check_port(host: str, port: int, option: str = "", *, hint: str = "") -> None:
    """``UsageError`` naming ``option`` (or ending with ``hint``, for a port set otherwise)
    when ``host:port`` cannot be listened on: said before Kafka starts and the keys are made,
    not minutes later. Port 0 (any free one) passes."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # As the servers bind (uvicorn's socket, asyncio's start_server): a port a closed
        # connection left in TIME_WAIT is free to them, so it is free here.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            hint = hint or f"pass {option} PORT, or 0 for any free port"
            raise UsageError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc} ({hint})"
            ) from None


def with_port_hint(exc: UsageError, port: int, option: str) -> UsageError:
    """``exc`` with ``option`` named, when it says ``port`` could not be listened on (taken
    between :func:`check_port` and the server's start); else ``exc`` itself."""
    text = str(exc)
    if f":{port}:" not in text or option in text:
        return exc
    return UsageError(f"{text} (pass {option} PORT, or 0 for any free port)")
