"""The import layers of ``broker/``: a package imports only packages below it.

The order is written once here and once in ``broker/__init__.py``'s docstring (a test checks
they agree). Every import counts, including those inside functions and under
``TYPE_CHECKING``: a cycle hidden in a function is still a cycle.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import broker

BROKER = Path(broker.__file__).resolve().parent

#: Lowest first. A unit is a sub-package or a top-level module of ``broker``; units in one
#: layer do not import each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "_words", "_pg_live"),
    ("_canonical", "_models", "_private", "_vectors", "config", "principals", "topics"),
    ("crypto", "events", "ops", "_http_guard"),
    ("envelope", "linkage", "synthetic"),
    ("keys", "kafka"),
    ("policy", "devkafka"),
    ("audit", "provision"),
    ("pipeline", "sdk", "governance", "deploy", "webauth"),
    ("console", "desk", "gateway"),
    ("cli",),
    ("__main__",),
)
RANK = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}


def _unit(path: Path) -> str:
    rel = path.relative_to(BROKER)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imported_units(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "broker":
                names = [f"broker.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        found |= {n.split(".")[1] for n in names if n.startswith("broker.")}
    return found


def _modules() -> list[Path]:
    return sorted(p for p in BROKER.rglob("*.py") if p.name != "__init__.py" or p.parent != BROKER)


def test_every_unit_of_broker_has_a_layer() -> None:
    units = {_unit(p) for p in _modules()}
    assert units - set(RANK) == set(), "add new packages to LAYERS (and broker/__init__.py)"


def test_no_package_imports_one_above_it_or_beside_it() -> None:
    wrong = []
    for path in _modules():
        src = _unit(path)
        for dst in _imported_units(ast.parse(path.read_text(), str(path))) - {src}:
            if RANK[dst] >= RANK[src]:
                wrong.append(f"{path.relative_to(BROKER)} imports broker.{dst}")
    assert wrong == []


def test_the_package_docstring_states_the_same_layers() -> None:
    doc = broker.__doc__ or ""
    stated = [
        tuple(re.findall(r"``([\w]+)``", line))
        for line in doc.splitlines()
        if re.match(r"\s*\d+\.\s", line)
    ]
    assert stated == [layer for layer in LAYERS if layer != ("__main__",)]


def test_only_one_module_touches_cryptography() -> None:
    pattern = re.compile(r"^\s*(from|import)\s+cryptography", re.MULTILINE)
    users = sorted(str(p.relative_to(BROKER)) for p in _modules() if pattern.search(p.read_text()))
    assert users == ["crypto/_primitives.py"]


def test_private_modules_are_imported_only_within_their_package() -> None:
    wrong = []
    for path in _modules():
        src = _unit(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                parts = node.module.split(".")
                private = len(parts) >= 3 and parts[0] == "broker" and parts[2].startswith("_")
                if private and parts[1] != src:
                    wrong.append(f"{path.relative_to(BROKER)} imports {node.module}")
    assert wrong == []
