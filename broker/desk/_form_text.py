"""What a desk form that chooses and explains (a team's decision and its reason, a hub's
outcome and its summary) is told when it is not filled in as it must be, and the text it
carries as written.

Each field at fault has its own message (GOV.UK's error summary pattern): the summary links
to each, and each control is marked invalid and described by its own, so that a screen
reader on the reason field hears what is wrong with the reason, not with the choice.
"""

from __future__ import annotations

from collections.abc import Collection

from broker.webauth import Flash

__all__ = ["MAX_REASON", "too_long", "unfinished", "written"]

MAX_REASON = 2000


def written(typed: str) -> str:
    """A reason or summary as written: a browser posts each line break as CR LF, which would
    count two characters against the limit, so every line break is LF (as it is counted, put
    under a re-send's MAC, sent and recorded); no space around it."""
    return typed.replace("\r\n", "\n").replace("\r", "\n").strip()


def too_long(what: str, text: str) -> str:
    """What a reason or summary over the limit is told: by how much, so that the person
    knows what to cut (the form has no maxlength, which would cut it silently)."""
    return f"The {what} is {len(text):,} characters; it can be at most {MAX_REASON:,}."


def unfinished(
    choice: str, choices: Collection[str], text: str, *, field: str, what: str, choose: str
) -> list[Flash]:
    """Why a form that chooses (``field``: one of ``choices``) and explains (``what``, whose
    control's id it is too: up to :data:`MAX_REASON` characters) is refused: one error per
    field at fault, the choice's first; none if it is filled in as it must be. ``choose``:
    what a form without a good choice is told ("Choose a decision"). A good choice is not
    asked for again, nor a good explanation."""
    wrong = []
    if choice not in choices:
        wrong.append(Flash.error(f"{choose}.", field=field))
    if not text:
        wrong.append(Flash.error(f"Give a {what} (up to {MAX_REASON:,} characters).", field=what))
    elif len(text) > MAX_REASON:
        wrong.append(Flash.error(too_long(what, text), field=what))
    return wrong
