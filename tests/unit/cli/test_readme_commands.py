"""README's *The command line* lists every ``accord`` command, and nothing that is gone: an
evaluator found ``accord audit quarantine``, ``accord desk users`` and ``accord desk
remove-user`` missing from it."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

from typer.main import get_command

from broker.cli import build_app

README = Path(__file__).resolve().parents[3] / "README.md"


def _cli(command: Any, path: tuple[str, ...] = ("accord",)) -> set[tuple[str, ...]]:
    """Every command path ``accord --help`` and its groups' ``--help`` list (a group that
    runs by itself, ``accord desk --as PARTY``, counts as one too)."""
    subs = getattr(command, "commands", None)
    if subs is None:
        return {path}
    found = {path} if len(path) > 1 and command.invoke_without_command else set()
    for name, sub in subs.items():
        if not sub.hidden:
            found |= _cli(sub, (*path, name))
    return found


def _readme() -> set[tuple[str, ...]]:
    """Each line of the section's block: its command words, ``a|b`` read as each of them."""
    section = README.read_text().split("## The command line", 1)[1]
    block = section.split("```", 2)[1]
    found: set[tuple[str, ...]] = set()
    for line in block.splitlines():
        words = re.split(r"\s{2,}", line.strip())[0].split()  # the description is past 2+ spaces
        if not words or words[0] != "accord":
            continue
        names = list(itertools.takewhile(lambda w: re.fullmatch(r"[a-z][a-z|-]*", w), words))
        found |= set(itertools.product(*(n.split("|") for n in names)))
    return found


def test_the_readme_lists_every_command_and_no_other() -> None:
    cli, readme = _cli(get_command(build_app())), _readme()
    assert sorted(cli - readme) == [], "commands missing from README's list"
    assert sorted(readme - cli) == [], "README lists commands accord does not have"
