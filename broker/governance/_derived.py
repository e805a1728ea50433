"""What ``verify --db`` checks of the tables the indexer builds from records, not holding them.

Subject access requests read ``audit_subjects``, the override review queue reads
``override_reviews``, and the Operation Encompass report reads ``encompass_notices``. Each
row must be what a verified record implies, and each record's rows must be there: a row
deleted by hand would empty a child's disclosure log, and one added would take an override
off the review queue with no signed review behind it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from broker.audit import AuditKind, AuditRecord
from broker.errors import ChainBroken
from broker.governance._store import (
    DerivedRows,
    ReviewRow,
    is_encompass_notice,
    notice_row,
    review_row,
)

_Notice = tuple[str, str, str]  # event, party, notified_at


@dataclass
class Derived:
    """The derived rows the verified records imply, gathered as they are read."""

    subjects: set[tuple[str, str, int]] = field(default_factory=set)
    reviews: dict[tuple[str, int], ReviewRow] = field(default_factory=dict)
    notices: dict[tuple[str, int], _Notice] = field(default_factory=dict)

    def take(self, rec: AuditRecord) -> None:
        self.subjects.update((key, rec.chain, rec.seq) for key in rec.subject_keys)
        if rec.kind is AuditKind.OVERRIDE_REVIEWED:
            self.reviews[(rec.chain, rec.seq)] = review_row(rec)
        if is_encompass_notice(rec):
            self.notices[(rec.chain, rec.seq)] = notice_row(rec)

    def check(self, stored: DerivedRows) -> None:
        """Raise :class:`ChainBroken` at the first row that differs from the records."""
        held = set(stored.subjects)
        for _, chain, seq in sorted(held - self.subjects):
            raise ChainBroken(seq, "a subject link no record names (added)", chain=chain)
        for _, chain, seq in sorted(self.subjects - held):
            raise ChainBroken(seq, "a subject link the record names is missing", chain=chain)
        reviews = [((c, s), row) for row, c, s in stored.reviews]
        _rows("review", reviews, self.reviews)
        notices = [((c, s), (e, p, a)) for e, p, a, c, s in stored.notices]
        _rows("Operation Encompass notice", notices, self.notices)


_Pos = tuple[str, int]  # chain, seq


def _rows(
    what: str,
    stored: Sequence[tuple[_Pos, tuple[str, ...]]],
    implied: Mapping[_Pos, tuple[str, ...]],
) -> None:
    """Every row must be one record's, exactly; every (event, party) a record names must
    have its row (the first record's: later ones stay in the log only)."""
    article = "an" if what[:1].lower() in "aeiou" else "a"
    for (chain, seq), fields in stored:
        held = implied.get((chain, seq))
        if held is None:
            raise ChainBroken(seq, f"{article} {what} row no record holds (added)", chain=chain)
        if held != fields:
            # The record is there and verified: the row was edited, not made up.
            raise ChainBroken(
                seq, f"{article} {what} row differs from what its record holds (changed)",
                chain=chain,
            )  # fmt: skip
    have = {fields[:2] for _, fields in stored}
    for (chain, seq), fields in sorted(implied.items()):
        if fields[:2] not in have:
            raise ChainBroken(seq, f"the {what} this record makes is missing", chain=chain)
