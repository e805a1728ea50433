"""Words a user reads: a count and its noun agreeing (``1 chain``, never ``1 chains``), and
the likeliest word meant by a mistyped one."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["closest", "noun", "plural"]


def closest(word: str, options: Iterable[str]) -> str | None:
    """The option ``word`` most likely mistypes (a "did you mean"), or None when none is near."""
    found = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return found[0] if found else None


def noun(n: int, singular: str, many: str | None = None) -> str:
    """``singular`` for exactly one, else ``many`` (an irregular plural) or ``singular + s``.

    The noun alone is for a page that shows the number apart (a dashboard tile's figure)."""
    if n == 1:
        return singular
    return many if many is not None else f"{singular}s"


def plural(n: int, singular: str, many: str | None = None) -> str:
    """``1 chain``, ``2 chains``, ``0 chains``; ``plural(1, "entry", "entries")``."""
    return f"{n} {noun(n, singular, many)}"
