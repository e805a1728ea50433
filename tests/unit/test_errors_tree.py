"""errors.py's docstring draws the hierarchy: every error class is in it, under its parent."""

from __future__ import annotations

import re

import broker.errors


def _drawn() -> dict[str, int]:
    """Each class the tree draws, by the column its name starts at (its depth)."""
    doc = broker.errors.__doc__ or ""
    drawn = {}
    for line in doc.split("::", 1)[1].splitlines():
        if (m := re.search(r"[A-Z][A-Za-z]+", line)) and m.group() in broker.errors.__all__:
            drawn[m.group()] = m.start()
    return drawn


def test_every_error_class_is_drawn_in_the_module_docstring_s_tree() -> None:
    assert set(_drawn()) == set(broker.errors.__all__)


def test_each_class_is_drawn_under_its_parent() -> None:
    drawn = _drawn()
    for name in broker.errors.__all__:
        cls = getattr(broker.errors, name)
        parent = cls.__mro__[1].__name__
        if parent == "Exception":
            continue
        assert drawn[name] > drawn[parent], f"{name} is not drawn under {parent}"
