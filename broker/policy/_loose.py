"""The clauses of an agreement that failed its shape check, made checkable for what they mean.

A shape problem (``consent: not_requried``, a misspelt key, a bad ``status``) stops the
agreement's model, and until now every semantic check of the file with it: the author fixed
the word, ran ``accord policy check`` again, and only then learnt that the clause's ``when``
reads a field that does not exist. Here each clause of such an agreement is validated on its
own; a field that failed is put right by a stand-in that provokes no problem elsewhere in the
clause, an unknown key is left out, and ``check_loose`` says nothing at those places (their
shape problems are already reported). A clause failing at a field with no safe stand-in
(``from``, ``to``, ``share``, ``when`` ...) is still not checked further.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from pydantic import ValidationError

from broker.policy._model import Clause

__all__ = ["LooseClause", "loose_clauses"]

# Each passes every check and changes no other field's: ``required`` consent and a
# ``public_task`` basis never meet the basis-versus-consent rules; no ``subjects`` is "all".
_STAND_INS: Final[dict[str, Any]] = {
    "id": "clause",
    "purpose": "purpose",
    "consent": "required",
    "lawful_basis": {"article6": "public_task"},
    "subjects": None,
    "description": None,
}


@dataclass(frozen=True, slots=True)
class LooseClause:
    """Clause ``index`` of the agreement ``agreement`` (its id as written, or ``?``) in the
    file the loader calls ``source``; ``stand_ins`` are the fields put right or left out."""

    source: tuple[str, int]
    agreement: str
    index: int
    clause: Clause
    stand_ins: frozenset[str]


def loose_clauses(data: object, source: tuple[str, int]) -> list[LooseClause]:
    """The clauses of the agreement mapping ``data`` that can be checked for meaning."""
    if not isinstance(data, dict) or not isinstance(data.get("clauses"), list):
        return []
    aid = data.get("id")
    agreement = aid if isinstance(aid, str) else "?"
    out: list[LooseClause] = []
    for j, body in enumerate(data["clauses"]):
        if isinstance(body, dict) and (made := _made(body)) is not None:
            clause, stand_ins = made
            out.append(LooseClause(source, agreement, j, clause, stand_ins))
    return out


def _made(body: dict[Any, Any]) -> tuple[Clause, frozenset[str]] | None:
    try:
        return Clause.model_validate(body), frozenset()
    except ValidationError as exc:
        errors = exc.errors()
    fixed = dict(body)
    names: set[str] = set()
    for err in errors:
        name = err["loc"][0] if err["loc"] else None
        if not isinstance(name, str):
            return None
        if err["type"] == "extra_forbidden" and len(err["loc"]) == 1:
            fixed.pop(name, None)
        elif name in _STAND_INS:  # a fault inside a field (lawful_basis.articel10) too
            fixed[name] = _STAND_INS[name]
        else:
            return None
        names.add(name)
    try:
        return Clause.model_validate(fixed), frozenset(names)
    except ValidationError:
        return None
