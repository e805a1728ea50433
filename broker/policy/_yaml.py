"""YAML reading that remembers where each value came from, so problems can say ``file:line``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Located", "YamlProblem", "fmt_path", "read_yaml"]

Loc = tuple[int | str, ...]


class YamlProblem(Exception):
    """A file that is not readable YAML; ``str()`` is ``file:line: what``."""


@dataclass
class Located:
    """Parsed YAML plus the line of every node, by its path from the document root."""

    name: str
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)
    duplicates: list[Loc] = field(default_factory=list)

    def where(self, loc: Loc) -> str:
        """``file:line: path`` for the deepest known ancestor of ``loc``."""
        probe = tuple(loc)
        while probe and probe not in self.lines:
            probe = probe[:-1]
        line = self.lines.get(probe, 1)
        path = fmt_path(loc)
        return f"{self.name}:{line}: {path}" if path else f"{self.name}:{line}"

    def key_spelt(self, parent: Loc, key: object) -> str | None:
        """How the file spells ``key``, a key of the mapping at ``parent`` that YAML read as
        other than text (``123``, ``true``, ``2026-01-01``); None if it cannot be told.
        (pydantic's place for such a key is no help: ``true`` is 1, a date its repr.)"""
        for loc in self.lines:
            if len(loc) != len(parent) + 1 or loc[:-1] != parent:
                continue
            spelt = loc[-1]
            try:
                read = yaml.safe_load(spelt) if isinstance(spelt, str) else None
            except yaml.YAMLError:
                continue
            if type(read) is type(key) and read == key:
                return str(spelt)
        return None


def fmt_path(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _index(node: yaml.Node, loc: Loc, doc: Located) -> None:
    doc.lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value != "<<":
                here = (*loc, key.value)
                if key.value in seen:
                    # The YAML loader silently keeps the last one: a policy must not.
                    doc.duplicates.append(here)
                    doc.lines[here] = key.start_mark.line + 1
                seen.add(key.value)
                doc.lines.setdefault(here, key.start_mark.line + 1)
                _index(value, here, doc)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*loc, i), doc)


def read_yaml(path: Path, name: str) -> Located:
    """Parse ``path`` (safe loader: anchors and merge keys work, no object construction)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise YamlProblem(f"{name}: not UTF-8 text") from None
    loader = yaml.SafeLoader(text)
    doc = Located(name, None)
    node: yaml.Node | None = None
    try:
        node = loader.get_single_node()
        if node is not None:
            # Indexed first: building the data flattens merge keys into the nodes.
            _index(node, (), doc)
            doc.data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise YamlProblem(f"{name}:{line}: not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise YamlProblem(f"{name}: not valid YAML: {type(exc).__name__}") from None
    except ValueError as exc:  # a scalar YAML types but cannot build: 2026-02-30, a bad time
        raise YamlProblem(_unbuildable(doc, node, exc)) from None
    finally:
        loader.dispose()
    return doc


def _unbuildable(doc: Located, root: yaml.Node | None, exc: ValueError) -> str:
    """``file:line: path: ...`` for the first scalar that cannot be built (the constructor
    says what failed, not where)."""
    if root is not None:
        for loc, node in _scalars(root, ()):
            try:
                yaml.SafeLoader("").construct_object(node)
            except ValueError:
                return f"{doc.where(loc)}: a value YAML cannot read: {exc}"
    return f"{doc.name}: a value YAML cannot read: {exc}"


def _scalars(node: yaml.Node, loc: Loc) -> list[tuple[Loc, yaml.Node]]:
    if isinstance(node, yaml.ScalarNode):
        return [(loc, node)]
    out: list[tuple[Loc, yaml.Node]] = []
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                out.extend(_scalars(value, (*loc, key.value)))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out.extend(_scalars(item, (*loc, i)))
    return out
