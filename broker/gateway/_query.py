"""The query parameters each gateway route takes: any other, or one given twice, is refused.

A misspelt ``?recordid=`` ignored would file a consent record a second time under a new id
(the re-send after a 504 it was meant for), and of ``?record_id=A&record_id=B`` one would be
taken silently. A parameter's name is the caller's text, like a JSON key: it is named only
when it is one of the gateway's own names or a near miss of one (lowercase letters and
underscores); a value never.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from urllib.parse import parse_qsl

__all__ = ["query_problem"]

_NAME_LIKE = re.compile(r"[a-z][a-z_]{0,39}")
_NEAR_MISS = 0.8
_OURS = ("record_id",)
_NOTHING = "nothing was written"


def _subject(name: str, allowed: frozenset[str]) -> str:
    """How the answer names the parameter: by its name only when that is ours, or a near
    miss of ours (a typo); else not at all (it may be anything, a surname say)."""
    if _NAME_LIKE.fullmatch(name):
        if name in _OURS:
            return f"query parameter '{name}'"
        near = difflib.get_close_matches(name, sorted(allowed), 1, _NEAR_MISS)
        if near:
            return f"query parameter '{name}' (did you mean {near[0]!r}?)"
    return "an unknown query parameter"


def query_problem(path: str, query: bytes, taken: Mapping[str, frozenset[str]]) -> str | None:
    """What is wrong with ``query`` for ``path`` (whose parameters ``taken`` lists: none if
    it is not there), or None."""
    if not query:
        return None
    allowed = taken.get(path, frozenset())
    seen: set[str] = set()
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    for name, _value in pairs:
        if name not in allowed:
            subject = _subject(name, allowed)
            if not allowed:
                return f"{path} takes no query parameters ({subject} given); {_NOTHING}"
            takes = ", ".join(f"?{a}=" for a in sorted(allowed))
            return f"{subject} is not one {path} takes (only {takes}); {_NOTHING}"
        if name in seen:
            return f"{_subject(name, allowed)} is given more than once; {_NOTHING}"
        seen.add(name)
    return None
