"""Where a clause is written, for the warnings ``accord policy check`` prints.

Problems are placed by the loader as it reads (``file:line: path``); warnings are worked out
from the loaded bundle, whose models keep no lines, so a clause is found again in its file
here. A bundle that loaded has one agreement per file, in file order (``read_bundle``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from broker.policy._layout import agreement_files
from broker.policy._model import Agreement, Bundle, Clause
from broker.policy._yaml import YamlProblem, read_yaml

__all__ = ["Place", "clause_places", "nowhere"]

#: ``file:line: `` of a clause, or ``""`` where it cannot be told.
Place = Callable[[Agreement, Clause], str]


def nowhere(_agreement: Agreement, _clause: Clause) -> str:
    """A bundle built in code, or files that no longer match it: no place to give."""
    return ""


def clause_places(bundle: Bundle, root: Path | None) -> Place:
    """Each clause's ``file:line: `` in the folder ``bundle`` was loaded from (``root``)."""
    files = agreement_files(root) if root is not None else []
    if root is None or len(files) != len(bundle.agreements):
        return nowhere
    places: dict[tuple[str, str], str] = {}
    for path, agreement in zip(files, bundle.agreements, strict=True):
        try:
            doc = read_yaml(path, path.relative_to(root).as_posix())
        except (YamlProblem, OSError, UnicodeDecodeError):
            continue  # changed since it loaded: that clause goes unplaced
        for j, clause in enumerate(agreement.clauses):
            line = doc.lines.get(("clauses", j), 1)
            places[(agreement.id, clause.id)] = f"{doc.name}:{line}: "

    def place(agreement: Agreement, clause: Clause) -> str:
        return places.get((agreement.id, clause.id), "")

    return place
