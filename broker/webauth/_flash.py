"""Messages a page leaves for the next one (after a form's redirect): a success or an error.

An error is shown as an error summary ("There is a problem", each message a link to its field
where one is known) and the page's title starts "Error: "; a success as a notification banner.
Both take the focus as the page loads, without script (``autofocus`` on a ``tabindex="-1"``
box), so a screen reader says them and a keyboard user starts from them. A message is held in
the session's memory only until the next page: it says what was wrong, never what was typed.
A form refused for something the person can put right is not redirected: its page is drawn
again in place with its errors (``WebPages.render(errors=...)``) and its controls filled from
the POST, so what was typed is in that one response only (:func:`refused_in_place`).

The field an error names is the id of the form control it is about; a page that draws that
control again marks it with :func:`invalid` (``aria-invalid``, ``aria-describedby``) and puts
:func:`field_error`'s message beside it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from fastapi.responses import Response
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup, escape

__all__ = ["Flash", "page_messages", "refused_in_place", "template_globals"]


@dataclass(frozen=True, slots=True)
class Flash:
    kind: Literal["success", "error"]
    text: str
    field: str | None = None  # the id of the form control an error is about
    # What is said beside the control, when the summary's text is too long for it (and for
    # the control's description, which a screen reader says on every visit).
    beside: str | None = None

    @classmethod
    def success(cls, text: str) -> Flash:
        return cls("success", text)

    @classmethod
    def error(cls, text: str, *, field: str | None = None, beside: str | None = None) -> Flash:
        return cls("error", text, field, beside)


class Redraw(Protocol):
    """A form's page drawn again: answering ``status``, with ``errors`` and its controls
    filled from ``typed`` (the form as it was posted; None: as a new page has it)."""

    def __call__(
        self, *, status: int, errors: Sequence[Flash], typed: dict[str, Any] | None
    ) -> Awaitable[Response]: ...


class Refused(Protocol):
    """A form refused: ``text`` its one error, about ``field`` where one is known."""

    def __call__(
        self, text: str, *, field: str | None = None, status: int = 400, fresh: bool = False
    ) -> Awaitable[Response]: ...


def refused_in_place(draw: Redraw, typed: dict[str, Any]) -> Refused:
    """How a form refused for something the person can put right is answered: its page drawn
    again by ``draw`` (400 unless said), with the refusal in its error summary and the form as
    posted (``typed``), or, ``fresh``, as a new page has it (what the form was about having
    gone). ``typed`` is held by the caller's request alone: never by a session or a log."""

    async def refused(
        text: str, *, field: str | None = None, status: int = 400, fresh: bool = False
    ) -> Response:
        errors = [Flash.error(text, field=field)]
        return await draw(status=status, errors=errors, typed=None if fresh else typed)

    return refused


def page_messages(flash: Iterable[Flash], errors: Iterable[Flash] = ()) -> dict[str, Any]:
    """A page's ``errors`` (the flash's, then the page's own) and ``successes``."""
    held = list(flash)
    return {
        "errors": [m for m in held if m.kind == "error"] + list(errors),
        "successes": [m for m in held if m.kind != "error"],
    }


def _errors_for(context: Context, field: str) -> list[Flash]:
    return [m for m in context.get("errors") or () if m.field == field]


@pass_context
def invalid(context: Context, field: str, hint: str = "") -> Markup:
    """`` aria-invalid="true" aria-describedby="<field>-error"`` on a control with an error;
    ``hint``: the id of the control's hint (its limit), described by it whether or not there
    is an error (one attribute naming both: a second would be ignored)."""
    wrong = bool(_errors_for(context, field))
    described = [f"{field}-error"] if wrong else []
    if hint:
        described.append(hint)
    if not described:
        return Markup("")
    said = Markup(' aria-invalid="true"') if wrong else Markup("")
    return said + Markup(' aria-describedby="{0}"').format(" ".join(described))


@pass_context
def field_error(context: Context, field: str) -> Markup:
    """The error beside its control (the one ``invalid`` points at), or nothing."""
    found = _errors_for(context, field)
    if not found:
        return Markup("")
    text = " ".join(m.beside or m.text for m in found)
    return Markup(
        '<span class="field-error" id="{0}-error"><span class="visually-hidden">Error:</span> '
        "{1}</span>"
    ).format(field, escape(text))


def template_globals() -> dict[str, Any]:
    return {"invalid": invalid, "field_error": field_error}
