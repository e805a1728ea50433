"""A decision's grounds (agreement, clause, purpose, lawful basis) and the small readers of
an audit record's data that the disclosure log and the governance report share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from broker.policy import basis_words


@dataclass(frozen=True, slots=True)
class Ground:
    """One clause a decision rests on (or, refused, was weighed under): its agreement, purpose
    and lawful basis. A share under two agreements has two, and each is a basis for it."""

    agreement_id: str | None
    clause_id: str | None
    purpose: str | None
    lawful_basis: str | None  # as codes (basis_text): what JSON and CSV carry
    # The same basis in words (basis_words), for a table, a page or the console; derived
    # from what lawful_basis is, so it takes no part in comparing grounds.
    shown_basis: str | None = field(default=None, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """The JSON's ground: codes only (its shape is an interface)."""
        return {
            "agreement_id": self.agreement_id,
            "clause_id": self.clause_id,
            "purpose": self.purpose,
            "lawful_basis": self.lawful_basis,
        }


def basis_text(basis: object) -> str | None:
    """``public_task; Art 9: safeguarding_children`` from a decision's ``lawful_basis``: its
    codes, as JSON and CSV give them (a reader is shown ``basis_words``)."""
    if not isinstance(basis, dict):
        return None
    parts = [str(basis.get("article6") or "")]
    for art in ("article9", "article10"):
        if basis.get(art):
            parts.append(f"Art {art[7:]}: {basis[art]}")
    return "; ".join(p for p in parts if p) or None


def str_tuple(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, (list, tuple)) else ()


def str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def decision_grounds(data: dict[str, Any]) -> tuple[Ground, ...]:
    """Every clause a ``decided`` record's data names in its ``grounds``; a record written
    without them (before they were recorded) has its one agreement, purpose and basis."""
    listed = data.get("grounds")
    if isinstance(listed, list) and listed:
        return tuple(
            Ground(
                str_or_none(g.get("agreement_id")),
                str_or_none(g.get("clause_id")),
                str_or_none(g.get("purpose")),
                basis_text(g.get("lawful_basis")),
                basis_words(g.get("lawful_basis")),
            )
            for g in listed
            if isinstance(g, dict)
        )
    first = Ground(
        str_or_none(data.get("agreement_id")),
        None,
        str_or_none(data.get("purpose")),
        basis_text(data.get("lawful_basis")),
        basis_words(data.get("lawful_basis")),
    )
    return () if first == Ground(None, None, None, None) else (first,)
