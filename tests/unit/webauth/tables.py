"""Checks that a page's data tables scroll in a named region of their own (WCAG 1.4.10
Reflow): shared by the console's and the desk's page tests."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}  # fmt: skip


class _Tables(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.open: list[tuple[str, dict[str, str]]] = []
        self.texts: dict[str, list[str]] = {}  # id -> its text
        self.tables: list[tuple[str, dict[str, str] | None]] = []  # (table id, its region)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "table":
            parent = self.open[-1] if self.open else ("", {})
            self.tables.append((a.get("id", ""), parent[1] if parent[0] == "div" else None))
        if tag in VOID:
            return
        self.open.append((tag, a))
        if "id" in a:
            self.texts.setdefault(a["id"], [])

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.open) - 1, -1, -1):
            if self.open[i][0] == tag:
                del self.open[i:]
                return

    def handle_data(self, data: str) -> None:
        for _, a in self.open:
            if "id" in a:
                self.texts[a["id"]].append(data)


def unscrolled_tables(page: str) -> tuple[list[str], list[str]]:
    """(ids of every table on the page, problems: a table not straight inside a focusable
    region that scrolls and whose name is an element of the page with text)."""
    parser = _Tables()
    parser.feed(page)
    problems = []
    for table, region in parser.tables:
        if region is None or "table-scroll" not in region.get("class", "").split():
            problems.append(f"{table}: not in a .table-scroll box")
            continue
        if region.get("role") != "region" or region.get("tabindex") != "0":
            problems.append(f"{table}: its box is not a focusable region")
        label = region.get("aria-labelledby", "")
        if not "".join(parser.texts.get(label, [])).strip():
            problems.append(f"{table}: its region's name {label!r} is no element with text")
    return [t for t, _ in parser.tables], problems


def tables_in_templates(folder: Path) -> list[tuple[str, str]]:
    """(template, the line before) for each <table> in a folder's templates: the line before
    must open its region, so a table added later without one is found here too."""
    found = []
    for template in sorted(folder.glob("*.html")):
        lines = template.read_text("utf-8").splitlines()
        for i, line in enumerate(lines):
            if "<table" in line:
                found.append((template.name, lines[i - 1] if i else ""))
    return found
