"""``Policy``: a checked, compiled bundle that decides. Load once, decide many times."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from broker.errors import BundleInvalid
from broker.events import ConsentRecord, ContactEvent
from broker.policy._authority import (
    ConsentRefusal,
    consent_refusal,
    filed_on_arrival,
    ignored_on_arrival,
    refusal_on_arrival,
    refusal_words,
)
from broker.policy._check import Conditions, bundle_warnings, check_bundle, check_flags, plain_where
from broker.policy._decide import decide
from broker.policy._decision import Decision
from broker.policy._flags import CompiledFlagRule
from broker.policy._index import Index, build_index
from broker.policy._load import read_bundle
from broker.policy._model import Bundle
from broker.policy._places import clause_places, nowhere

__all__ = ["Policy", "load_bundle"]


class Policy:
    """A policy bundle ready to decide; ``version`` is the hash of its canonical form."""

    __slots__ = ("_index", "bundle", "flag_rules", "source", "version")

    def __init__(
        self,
        bundle: Bundle,
        *,
        conditions: Conditions | None = None,
        flag_rules: tuple[CompiledFlagRule, ...] | None = None,
        source: Path | None = None,
    ) -> None:
        if conditions is None:
            problems, conditions = check_bundle(bundle, plain_where)
            if problems:
                raise BundleInvalid(problems)
        if flag_rules is None:
            problems, flag_rules = check_flags(bundle, plain_where)
            if problems:
                raise BundleInvalid(problems)
        self.bundle = bundle
        # flags.yaml's rules, compiled, in file order (the order they are tried in).
        self.flag_rules = flag_rules
        self.source = source
        self.version = bundle.version()
        self._index: Index = build_index(bundle, conditions, self.version)

    @classmethod
    def load(cls, path: Path | str) -> Policy:
        """Read, check and compile the bundle folder at ``path``.

        ``BundleInvalid`` lists every problem found, each with its file and line.
        """
        root = Path(path)
        bundle, conditions, flag_rules = read_bundle(root)
        return cls(bundle, conditions=conditions, flag_rules=flag_rules, source=root)

    def decide(
        self, event: ContactEvent, consents: Sequence[ConsentRecord] = (), *, at: datetime
    ) -> list[Decision]:
        """Every candidate recipient's decision for ``event`` at time ``at`` (pure: no I/O).

        Consent records that ``consent_refusal`` refuses count for nothing, whoever passes
        them in: a party suspended since it recorded one loses its say at once.
        """
        counted = [c for c in consents if consent_refusal(self.bundle, c) is None]
        return decide(self._index, event, counted, at)

    def consent_refusal(self, record: ConsentRecord) -> ConsentRefusal | None:
        """Why ``record`` would count for no decision (docs/policy-language.md §5), or None."""
        return consent_refusal(self.bundle, record)

    def refusal_on_arrival(self, record: ConsentRecord) -> tuple[ConsentRefusal, str | None] | None:
        """Why the worker refuses ``record`` as it arrives under this bundle, with the word it
        does not know (``unknown-purpose``, ``unknown-recipient``), or None: it is filed."""
        return refusal_on_arrival(self.bundle, record)

    def ignored_on_arrival(self, record: ConsentRecord) -> tuple[tuple[ConsentRefusal, str], ...]:
        """The words (reason, term) of a withdrawal filed under this bundle that it does not
        know and ignores; () when ``record`` is filed whole or refused."""
        return ignored_on_arrival(self.bundle, record)

    def filed_on_arrival(self, record: ConsentRecord) -> ConsentRecord:
        """``record`` (not refused on arrival) as the worker files it: a withdrawal without
        the words ignored (``ignored_on_arrival``), any other as it came."""
        return filed_on_arrival(self.bundle, record)

    def refusal_words(self, reason: str, term: str | None) -> str:
        """A refusal on arrival for a person, naming the unknown word and the known ones."""
        return refusal_words(self.bundle, reason, term)

    def warnings(self, *, placed: bool = False) -> list[str]:
        """What the bundle allows but probably does not mean, one line each (none block it);
        ``placed``: each starting ``file:line: `` of its clause, where the bundle was loaded
        from a folder (as ``accord policy check`` prints them, beside the problems)."""
        place = clause_places(self.bundle, self.source) if placed else nowhere
        return bundle_warnings(self.bundle, place)

    @property
    def counts(self) -> tuple[int, int, int]:
        """(parties, agreements, clauses)."""
        b = self.bundle
        return len(b.parties), len(b.agreements), sum(len(a.clauses) for a in b.agreements)

    def summary(self) -> str:
        parties, agreements, clauses = self.counts
        return (
            f"{parties} parties, {agreements} agreements, {clauses} clauses, "
            f"{len(self.bundle.restrictions)} restrictions, {len(self.flag_rules)} flag rules; "
            f"version {self.version}"
        )


def load_bundle(path: Path | str) -> Policy:
    """``Policy.load``, as a function."""
    return Policy.load(path)
