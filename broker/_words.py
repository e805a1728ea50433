"""A count and its noun, agreeing: what a user reads says ``1 chain``, never ``1 chains``."""

from __future__ import annotations

__all__ = ["noun", "plural"]


def noun(n: int, singular: str, many: str | None = None) -> str:
    """``singular`` for exactly one, else ``many`` (an irregular plural) or ``singular + s``.

    The noun alone is for a page that shows the number apart (a dashboard tile's figure)."""
    if n == 1:
        return singular
    return many if many is not None else f"{singular}s"


def plural(n: int, singular: str, many: str | None = None) -> str:
    """``1 chain``, ``2 chains``, ``0 chains``; ``plural(1, "entry", "entries")``."""
    return f"{n} {noun(n, singular, many)}"
