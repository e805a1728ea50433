"""Folders that are their owner's alone."""

from __future__ import annotations

from pathlib import Path

__all__ = ["make_private_folders"]


def make_private_folders(folder: Path) -> None:
    """Make ``folder`` and its missing parents, each 0700 whatever the umask; a folder that
    exists already is left as it is (``ACCORD_HOME`` may be shared). ``OSError`` raised."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for made in reversed(missing):
        made.mkdir(mode=0o700, exist_ok=True)
        made.chmod(0o700)
