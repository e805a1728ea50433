"""A page's form as a browser would post it, and where typed text must not be: shared by the
console's and the desk's tests of a refused form drawn again in place."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator, Mapping
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


def _strings(value: Any, seen: set[int] | None = None) -> Iterator[str]:
    """Every string held in ``value``, as it is (``repr`` would escape a newline, and a typed
    text holding one would never be found in it)."""
    seen = set() if seen is None else seen
    if isinstance(value, str):
        yield value
        return
    if isinstance(value, bytes):
        yield value.decode("utf-8", "replace")
        return
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, Mapping):
        items: Iterable[Any] = [*value.keys(), *value.values()]
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = [getattr(value, f.name) for f in dataclasses.fields(value)]
    elif hasattr(value, "__dict__"):
        items = list(vars(value).values())
    else:
        items = [str(value)]
    for item in items:
        yield from _strings(item, seen)


def nowhere_but_the_page(typed: Iterable[str], *, sessions: Any, logs: Iterable[Mapping[str, Any]],
                         location: str | None) -> None:  # fmt: skip
    """Each typed text is in no session (nor its flash), no log line and no address."""
    held = list(_strings(sessions))
    said = list(_strings(list(logs)))
    for text in typed:
        assert not any(text in s for s in held), "typed text kept in a session"
        assert not any(text in s for s in said), "typed text logged"
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
