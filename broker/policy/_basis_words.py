"""A lawful basis in the words a person reads, the same on every page and in every report.

A decision records its basis as codes (``{"article6": "public_task", "article9":
"safeguarding_children"}``), and JSON and CSV keep those: they are an interface. The desk's
record page, the disclosure log's table and page, the console and ``policy explain`` show
them as below. The codes are those ``accord policy check`` accepts (``ARTICLE6_BASES``,
``SPECIAL_BASES``, a test checks each has its words here); one it does not know (a record
decided under a later broker's) is shown as written, never dropped, so a reader can look it
up. docs/policy-language.md explains when each fits.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

__all__ = ["BASIS_LABELS", "basis_words"]

_ARTICLE6 = {
    "consent": "consent, Art 6(1)(a)",
    "legal_obligation": "legal obligation, Art 6(1)(c)",
    "vital_interests": "vital interests, Art 6(1)(d)",
    "public_task": "public task, Art 6(1)(e)",
    "legitimate_interests": "legitimate interests, Art 6(1)(f)",
}
_ARTICLE9 = {
    "safeguarding_children": "safeguarding of children, DPA 2018 Sch 1 para 18",
    "health_or_social_care": "health or social care, Art 9(2)(h), DPA 2018 Sch 1 para 2",
    "explicit_consent": "explicit consent, Art 9(2)(a)",
    "vital_interests": "vital interests, Art 9(2)(c)",
    "law_enforcement": "law enforcement, DPA 2018 Part 3",
}
# Offence data meets its condition in DPA 2018 Sch 1 (s10(5)): para 18 reaches it through
# para 36, and consent and vital interests have paras 29 and 30 of their own.
_ARTICLE10 = {
    "safeguarding_children": "safeguarding of children, DPA 2018 Sch 1 paras 18 and 36",
    "health_or_social_care": "health or social care, DPA 2018 Sch 1 para 2",
    "explicit_consent": "explicit consent, DPA 2018 Sch 1 para 29",
    "vital_interests": "vital interests, DPA 2018 Sch 1 para 30",
    "law_enforcement": "law enforcement, DPA 2018 Part 3",
}
#: Each article's codes and their words, in the order a basis is read.
BASIS_LABELS: Final[Mapping[str, Mapping[str, str]]] = MappingProxyType(
    {
        "article6": MappingProxyType(_ARTICLE6),
        "article9": MappingProxyType(_ARTICLE9),
        "article10": MappingProxyType(_ARTICLE10),
    }
)
_HEADS = {"article6": "Art 6", "article9": "Art 9", "article10": "Art 10"}


def basis_words(basis: object, sep: str = "; ") -> str | None:
    """``Art 6: public task, Art 6(1)(e); Art 9: safeguarding of children, DPA 2018 Sch 1
    para 18`` from a decision's ``lawful_basis`` (each article's part after ``sep``); None
    when it gives none. A code or key not known here is shown as written."""
    if not isinstance(basis, Mapping):
        return None
    parts = []
    for key in (*BASIS_LABELS, *(k for k in basis if k not in BASIS_LABELS)):
        code = basis.get(key)
        if code is None or code == "":
            continue
        words = BASIS_LABELS.get(str(key), {}).get(str(code), str(code))
        parts.append(f"{_HEADS.get(str(key), str(key))}: {words}")
    return sep.join(parts) or None
