"""What a party's agreements can send its desk, for the pages that offer a search by it.

A school's Records page offers a search by a child's NHS number only if some agreement can
send the school one: the example bundle's Operation Encompass clause shares a pupil's name and
date of birth, never an NHS number, and a search box for what never arrives reads as "we
would have found it". Read from the bundle the desk started with, generously: a clause of any
agreement but a draft (a suspended or expired one may have sent records still held), naming
the party or a selector of its kind (``school:of-child``, ``hub:locality``), sharing
``subject.nhs_number`` as it is (a pseudonym or other transform of it finds nothing by the
number). Its condition is not weighed: a clause that might reach the party counts.
"""

from __future__ import annotations

from broker.policy import Bundle

__all__ = ["receives_nhs_numbers"]

_SELECTOR_KINDS = {"school:of-child": "school", "hub:locality": "hub"}
_NHS = "subject.nhs_number"


def receives_nhs_numbers(bundle: Bundle, party: str) -> bool:
    """Whether any agreement may send ``party`` a person's NHS number as it is."""
    found = bundle.parties.get(party)
    kind = found.kind if found is not None else None
    for agreement in bundle.agreements:
        if agreement.status == "draft":
            continue
        for clause in agreement.clauses:
            reaches = party in clause.to or any(_SELECTOR_KINDS.get(to) == kind for to in clause.to)
            if reaches and _NHS in clause.share and _NHS not in clause.transform:
                return True
    return False
