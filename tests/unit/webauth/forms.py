"""A page's form as a browser would post it, and where typed text must not be: shared by the
console's and the desk's tests of a refused form drawn again in place."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from html.parser import HTMLParser
from typing import Any


class _Form(HTMLParser):
    """The controls of the first form whose ``id`` or ``action`` is ``which``."""

    def __init__(self, which: str) -> None:
        super().__init__(convert_charrefs=True)
        self.which = which
        self.inside = self.done = False
        self.fields: list[tuple[str, str]] = []
        self.select: str | None = None
        self.chosen: str | None = None
        self.first: str | None = None
        self.area: str | None = None
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and not self.done and self.which in (a.get("id"), a.get("action")):
            self.inside = True
        if not self.inside:
            return
        if tag == "input" and "name" in a:
            ticks = a.get("type") in ("checkbox", "radio")
            if not ticks or "checked" in a:
                self.fields.append((a["name"], a.get("value", "on" if ticks else "")))
        elif tag == "select":
            self.select, self.chosen, self.first = a["name"], None, None
        elif tag == "option" and self.select is not None:
            if self.first is None:
                self.first = a.get("value", "")
            if "selected" in a and "disabled" not in a:
                self.chosen = a.get("value", "")
        elif tag == "textarea":
            self.area, self.text = a["name"], []

    def handle_endtag(self, tag: str) -> None:
        if not self.inside:
            return
        if tag == "select" and self.select is not None:
            if self.chosen is not None:  # a disabled placeholder posts nothing
                self.fields.append((self.select, self.chosen))
            self.select = None
        elif tag == "textarea" and self.area is not None:
            # The one newline right after <textarea> is not part of its value (HTML).
            self.fields.append((self.area, "".join(self.text).removeprefix("\n")))
            self.area = None
        elif tag == "form":
            self.inside, self.done = False, True

    def handle_data(self, data: str) -> None:
        if self.area is not None:
            self.text.append(data)


def posted_form(page: str, which: str) -> list[tuple[str, str]]:
    """What submitting the form ``which`` (its id or action) of ``page`` posts, as is."""
    parser = _Form(which)
    parser.feed(page)
    assert parser.done, f"no form {which}"
    return parser.fields


def value_of(fields: Iterable[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in fields if k == name]


def nowhere_but_the_page(typed: Iterable[str], *, sessions: Any, logs: Iterable[Mapping[str, Any]],
                         location: str | None) -> None:  # fmt: skip
    """Each typed text is in no session (nor its flash), no log line and no address."""
    held = repr(sessions)
    said = repr(list(logs))
    for text in typed:
        assert text not in held, "typed text kept in a session"
        assert text not in said, "typed text logged"
        assert location is None or text not in location, "typed text in an address"


def error_summary(page: str) -> str:
    """The page's error summary box (a test fails if it has none)."""
    found = re.search(r'<div class="error-summary"[^>]*>.*?</div>', page, re.S)
    assert found, "no error summary"
    return found.group(0)


def control_tag(page: str, control_id: str) -> str:
    """The start tag of the form control whose ``id`` is ``control_id``."""
    found = re.search(rf'<(?:input|select|textarea)[^>]*\bid="{re.escape(control_id)}"[^>]*>', page)
    assert found, f"no control {control_id}"
    return found.group(0)
