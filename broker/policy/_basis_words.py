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
# Part 3 governs the sender's (a competent authority's, e.g. the police's) processing for a
# law-enforcement purpose; the recipient processes under UK GDPR on the Art 6 basis beside it.
# So the code records how the data was disclosed, no Art 9 or Art 10 condition of the
# recipient's, and reads under no article's heading (_SENDERS). Sch 8 conditions apply only
# to s35(8) sensitive processing, which offence data is not: cited under article9 only.
_LAW_ENFORCEMENT = (
    "disclosed by a competent authority as law enforcement processing, DPA 2018 Part 3"
)
_LAW_ENFORCEMENT_SPECIAL = f"{_LAW_ENFORCEMENT} (s35; Sch 8 for sensitive processing)"
_LAW_ENFORCEMENT_OFFENCE = f"{_LAW_ENFORCEMENT} (s35)"
# Para 18 is a Sch 1 Part 2 (substantial public interest) condition, so Art 9(2)(g) through
# DPA 2018 s10(3).
_ARTICLE9 = {
    "safeguarding_children": (
        "safeguarding of children and of individuals at risk, Art 9(2)(g), DPA 2018 Sch 1 para 18"
    ),
    "health_or_social_care": "health or social care, Art 9(2)(h), DPA 2018 Sch 1 para 2",
    "explicit_consent": "explicit consent, Art 9(2)(a)",
    "vital_interests": "vital interests, Art 9(2)(c)",
    "law_enforcement": _LAW_ENFORCEMENT_SPECIAL,
}
# Offence data may meet any condition of DPA 2018 Sch 1 Parts 1-3 (s10(5)). Para 18 is one
# as para 36 extends it, without its substantial-public-interest requirement; consent
# (para 29, plain consent, not "explicit") and vital interests (para 30) are Part 3's own.
_ARTICLE10 = {
    "safeguarding_children": (
        "safeguarding of children and of individuals at risk, DPA 2018 Sch 1 para 18 "
        "as para 36 extends it"
    ),
    "health_or_social_care": "health or social care, DPA 2018 Sch 1 para 2",
    "explicit_consent": "consent, DPA 2018 Sch 1 para 29",
    "vital_interests": "vital interests, DPA 2018 Sch 1 para 30",
    "law_enforcement": _LAW_ENFORCEMENT_OFFENCE,
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
_SPECIAL = frozenset({"article9", "article10"})
_SENDERS = frozenset({"law_enforcement"})


def basis_words(basis: object, sep: str = "; ") -> str | None:
    """``Art 6: public task, Art 6(1)(e); Art 9: safeguarding of children and of individuals
    at risk, Art 9(2)(g), DPA 2018 Sch 1 para 18`` from a decision's ``lawful_basis`` (each
    article's part after ``sep``); None when it gives none. A code or key not known here is
    shown as written. ``law_enforcement`` is the sender's Part 3 disclosure, no condition of
    the article it was written under, so it reads without that article's heading; said once
    if both name it (article9's words, which cite article10's s35 too)."""
    if not isinstance(basis, Mapping):
        return None
    parts: list[str] = []
    said_senders: set[str] = set()
    for key in (*BASIS_LABELS, *(k for k in basis if k not in BASIS_LABELS)):
        code = basis.get(key)
        if code is None or code == "":
            continue
        name, value = str(key), str(code)
        words = BASIS_LABELS.get(name, {}).get(value, value)
        if name not in _SPECIAL or value not in _SENDERS:
            parts.append(f"{_HEADS.get(name, name)}: {words}")
        elif value not in said_senders:  # article9 and article10 both name it: said once
            said_senders.add(value)
            parts.append(words)
    return sep.join(parts) or None
