"""Headless Debian Chromium for browser tests, driven by Playwright, and where screenshots go.

Playwright's own browser download needs the internet, which CI does not have: the tests use
Debian's ``chromium`` package (``make test`` installs it) through ``executable_path``. The
flags keep Chromium from calling home, which the closed network would refuse many times over.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from tests.conftest import REPO

CHROMIUM_FLAGS = (
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
)


def chromium_path() -> str:
    found = os.environ.get("ACCORD_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(found).exists():
        raise RuntimeError(
            "browser tests need Debian's Chromium: run 'make test' (it installs the chromium "
            "package) or set ACCORD_CHROMIUM to a Chromium binary"
        )
    return found


def screenshot_dir() -> Path:
    """``artifacts/screenshots`` in the repository (or ``$ACCORD_ARTIFACTS/screenshots``)."""
    root = Path(os.environ.get("ACCORD_ARTIFACTS", REPO / "artifacts"))
    out = root / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    return out


def server_logs(name: str) -> tuple[Path, Path]:
    """New stdout and stderr files for one server a browser test starts, kept beside the
    screenshots. Each call's are its own: two tests on two xdist workers once shared
    ``console-stdout.log``, and one read the other's console URL and signed in there."""
    out = screenshot_dir()
    fd, stdout = tempfile.mkstemp(prefix=f"{name}-", suffix="-stdout.log", dir=out)
    os.close(fd)
    return Path(stdout), Path(stdout.removesuffix("-stdout.log") + "-stderr.log")
