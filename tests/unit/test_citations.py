"""Code and schemas cite documents a clone has: docs/ and schemas/, never the product brief."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCES = [*(REPO / "broker").rglob("*.py"), *(REPO / "schemas").glob("*.json")]


def test_nothing_cites_the_brief_which_a_clone_does_not_have() -> None:
    citing = [str(p.relative_to(REPO)) for p in SOURCES if "brief §" in p.read_text()]
    assert citing == []


def test_every_cited_document_exists() -> None:
    cited = {
        m
        for p in SOURCES
        for m in re.findall(r"\b((?:docs|schemas)/[\w.-]+\.(?:md|json))", p.read_text())
    }
    assert cited, "the code cites its documents"
    assert sorted(c for c in cited if not (REPO / c).is_file()) == []
