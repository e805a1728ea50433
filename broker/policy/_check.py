"""What a policy bundle means, checked: every problem is reported, each with where it is.

``check_bundle`` works on parsed models, and a ``Where`` callback turns a model location
into ``file:line: path`` (the loader knows the files; bundles built in code get a plain
location). It also compiles every CEL condition exactly once and hands them back.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Final

from broker._words import closest
from broker.events import EVENT_TYPES, FIELD_PATHS, ROLES
from broker.policy._cel import Condition, compile_condition, probe
from broker.policy._cel_ops import Vocabulary, Words
from broker.policy._cel_types import value_problems
from broker.policy._flags import CompiledFlagRule, compile_flag_rule
from broker.policy._loose import LooseClause
from broker.policy._model import (
    ARTICLE6_BASES,
    PARTY_KINDS,
    SELECTORS,
    SPECIAL_BASES,
    TRANSFORM_TARGETS,
    TRANSFORMS,
    Bundle,
    Clause,
)
from broker.policy._places import Place, nowhere
from broker.policy._treatments import treatment_warnings
from broker.policy._yaml import fmt_path
from broker.principals import Principal

__all__ = [
    "Conditions",
    "Source",
    "Where",
    "bundle_warnings",
    "check_bundle",
    "check_flags",
    "check_loose",
]

# ("parties",) | ("agreement", index) | ("restrictions",) | ("flags",)
Source = tuple[str, ...] | tuple[str, int]
Where = Callable[[Source, tuple[int | str, ...]], str]
# (agreement index, clause index) or ("restriction", index) → compiled condition
Conditions = dict[tuple[int | str, int], Condition]

_PARTY_ID: Final = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_DISTRICT: Final = re.compile(r"^[A-Z]{1,2}[0-9][0-9A-Z]?$")
_SECTOR: Final = re.compile(r"^[A-Z]{1,2}[0-9][0-9A-Z]? [0-9]$")
_URN: Final = re.compile(r"^[0-9]{6}$")
_FIELDS: Final = frozenset(FIELD_PATHS)
_RESERVED: Final = frozenset({*(p.value for p in Principal), "accord"})


def _known(value: str, options: tuple[str, ...] | frozenset[str], what: str) -> str | None:
    if value in options:
        return None
    return _unknown(value, options, what)


def _unknown(value: str, options: Iterable[str], what: str) -> str:
    """``unknown <what> 'x'``, with the option it likely mistypes: a typo is the usual cause,
    and the list of every party or field path is too long to print."""
    close = closest(value, sorted(options))
    return f"unknown {what} {value!r}" + (f"; did you mean {close!r}?" if close else "")


def _unused_purpose(purpose: str, purposes: list[str]) -> str:
    close = closest(purpose, purposes)
    hint = f"did you mean {close!r}?" if close else f"clauses' purposes: {', '.join(purposes)}"
    return f"purpose {purpose!r} is no clause's purpose; {hint}"


class _Checker:
    def __init__(
        self, bundle: Bundle, where: Where, known_parties: frozenset[str], parties_read: bool
    ) -> None:
        self.bundle = bundle
        self.where = where
        # Parties that exist but failed their own checks: no cascade of "unknown party".
        self.known_parties = known_parties
        self.parties_read = parties_read
        self.problems: list[str] = []
        # Places whose shape problems are already reported (``check_loose``): nothing more
        # is said there, since what the check sees at them is a stand-in.
        self.reported: tuple[tuple[int | str, ...], ...] = ()
        self.conditions: Conditions = {}
        self.vocabulary = self._vocabulary()

    def _vocabulary(self) -> Vocabulary:
        """What conditions' fixed-list fields hold: a string outside one is never equal."""
        words = {
            "recipient.kind": Words("party kind", frozenset(PARTY_KINDS)),
            "recipient.status": Words("party status", frozenset({"active", "suspended"})),
            "event.type": Words("event type", frozenset(EVENT_TYPES), listed=False),
            "subject.role": Words("role", frozenset(ROLES)),
        }
        if self.parties_read:
            parties = frozenset(self.bundle.parties) | self.known_parties
            party = Words("party", parties, listed=False, among=" in the bundle")
            words |= {"recipient.id": party, "event.sender": party}
        return words

    def add(self, source: Source, loc: tuple[int | str, ...], message: str) -> None:
        if any(loc[: len(done)] == done for done in self.reported):
            return
        self.problems.append(f"{self.where(source, loc)}: {message}")

    def unknown_party(self, pid: str) -> bool:
        """No such party, as far as can be told: nothing is, when the parties were not read."""
        return self.parties_read and not (pid in self.bundle.parties or pid in self.known_parties)

    def no_party(self, pid: str, what: str = "party") -> str:
        return _unknown(pid, {*self.bundle.parties, *self.known_parties}, what)

    def run(self) -> None:
        self.parties()
        seen: dict[str, int] = {}
        for i, agreement in enumerate(self.bundle.agreements):
            src: Source = ("agreement", i)
            if agreement.id in seen:
                # Both places: the author must choose which file keeps the id.
                first = self.where(("agreement", seen[agreement.id]), ("id",))
                self.add(src, ("id",), f"duplicate agreement id {agreement.id!r} (also {first})")
            seen.setdefault(agreement.id, i)
            if agreement.valid_from > agreement.valid_until:
                self.add(src, ("valid_from",), "valid_from is after valid_until")
            clause_ids: set[str] = set()
            for j, clause in enumerate(agreement.clauses):
                if clause.id in clause_ids:
                    self.add(src, ("clauses", j, "id"), f"duplicate clause id {clause.id!r}")
                clause_ids.add(clause.id)
                named = f"agreement {agreement.id!r}, clause {clause.id!r}"
                if (cond := self.clause(src, j, clause, named)) is not None:
                    self.conditions[(i, j)] = cond
        self.restrictions()
        self.consent_authorities()

    def consent_authorities(self) -> None:
        src: Source = ("consent_authorities",)
        # Drafts count: an authority may be written ahead of the agreement it serves.
        purposes = sorted({c.purpose for a in self.bundle.agreements for c in a.clauses})
        for pid, rights in (self.bundle.consent_authorities or {}).items():
            loc: tuple[int | str, ...] = ("consent_authorities", pid)
            if self.unknown_party(pid):
                self.add(src, loc, self.no_party(pid))
            for k, purpose in enumerate(rights.purposes):
                # A misspelt purpose authorises nothing real, and the purpose meant is missing.
                if purpose != "*" and purpose not in purposes:
                    self.add(src, (*loc, "purposes", k), _unused_purpose(purpose, purposes))
            for k, entry in enumerate(rights.recipients):
                kind = entry.removeprefix("kind:")
                if entry == "*" or (entry.startswith("kind:") and kind in PARTY_KINDS):
                    continue
                if self.unknown_party(entry):
                    self.add(src, (*loc, "recipients", k), self.no_party(entry, "party or kind"))

    def parties(self) -> None:
        src: Source = ("parties",)
        urns: dict[str, str] = {}
        for pid, party in self.bundle.parties.items():
            loc: tuple[int | str, ...] = ("parties", pid)
            if not _PARTY_ID.match(pid):
                self.add(src, loc, "party id must be lower-case letters, digits and hyphens")
            elif pid in _RESERVED or pid.startswith("accord-"):
                # A party is a Kafka login of the same name, with its own group prefix
                # (<party>.): one named after a service would share that service's login and
                # grants, and "accord." would cover every desk's consumer groups.
                self.add(src, loc, f"party id {pid!r} is reserved for Accord's own services")
            if party.kind == "hub":
                for k, locality in enumerate(party.localities):
                    if not (_DISTRICT.match(locality) or _SECTOR.match(locality)):
                        self.add(
                            src,
                            (*loc, "localities", k),
                            f"locality {locality!r} is neither a postcode district (WV10) "
                            "nor a sector (WV10 6)",
                        )
            elif party.localities:
                self.add(src, (*loc, "localities"), "only a hub has localities")
            if party.kind == "school":
                if party.urn is None or not _URN.match(party.urn):
                    self.add(src, (*loc, "urn"), "a school needs a six-digit urn")
                elif party.urn in urns:
                    self.add(src, (*loc, "urn"), f"urn also used by party {urns[party.urn]!r}")
                else:
                    urns[party.urn] = pid
            elif party.urn is not None:
                self.add(src, (*loc, "urn"), "only a school has a urn")

    def clause(self, src: Source, j: int, clause: Clause, named: str) -> Condition | None:
        """Check clause ``j`` of the agreement ``src``; its compiled ``when``, if sound.
        ``named`` is how a condition's problems name it: reviewers know clauses by id."""
        base: tuple[int | str, ...] = ("clauses", j)
        self.routes(src, base, clause)
        if clause.subjects is not None:
            if not clause.subjects:
                self.add(
                    src,
                    (*base, "subjects"),
                    "an empty subjects list shares nobody; omit it for all",
                )
            for k, role in enumerate(clause.subjects):
                if msg := _known(role, ROLES, "role"):
                    self.add(src, (*base, "subjects", k), msg)
        self.paths(src, (*base, "share"), clause.share)
        self.transforms(src, base, clause)
        self.basis(src, base, clause)
        if clause.when is None:
            return None
        return self.condition(src, (*base, "when"), clause.when, named)

    def routes(self, src: Source, base: tuple[int | str, ...], clause: Clause) -> None:
        for k, pid in enumerate(clause.from_):
            if self.unknown_party(pid):
                self.add(src, (*base, "from", k), self.no_party(pid))
        for k, pid in enumerate(clause.to):
            if ":" in pid:
                if pid not in SELECTORS:
                    known_selectors = ", ".join(SELECTORS)
                    self.add(
                        src,
                        (*base, "to", k),
                        f"{_unknown(pid, SELECTORS, 'selector')} (known: {known_selectors})",
                    )
            elif self.unknown_party(pid):
                self.add(src, (*base, "to", k), self.no_party(pid))
        for k, etype in enumerate(clause.event_types):
            if msg := _known(etype, EVENT_TYPES, "event type"):
                self.add(src, (*base, "event_types", k), msg)

    def transforms(self, src: Source, base: tuple[int | str, ...], clause: Clause) -> None:
        for path, kind in clause.transform.items():
            loc = (*base, "transform", path)
            if path not in _FIELDS:
                self.add(src, loc, _unknown(path, _FIELDS, "field path"))
            elif kind not in TRANSFORMS:
                self.add(
                    src,
                    loc,
                    f"{_unknown(kind, TRANSFORMS, 'transform')} (known: {', '.join(TRANSFORMS)})",
                )
            elif path not in TRANSFORM_TARGETS[kind]:
                targets = ", ".join(sorted(TRANSFORM_TARGETS[kind]))
                self.add(
                    src,
                    loc,
                    f"transform {kind!r} does not apply to {path!r} (it applies to: {targets})",
                )
            elif path not in clause.share:
                self.add(src, loc, f"transforms {path!r}, which the clause does not share")

    def basis(self, src: Source, base: tuple[int | str, ...], clause: Clause) -> None:
        basis = clause.lawful_basis
        if msg := _known(basis.article6, ARTICLE6_BASES, "article6 basis"):
            self.add(src, (*base, "lawful_basis", "article6"), msg)
        for art, value in (("article9", basis.article9), ("article10", basis.article10)):
            if value is not None and (msg := _known(value, SPECIAL_BASES, f"{art} condition")):
                self.add(src, (*base, "lawful_basis", art), msg)
        relies_on_consent = basis.article6 == "consent" or "explicit_consent" in {
            basis.article9,
            basis.article10,
        }
        if relies_on_consent and clause.consent == "not_required":
            self.add(
                src,
                (*base, "consent"),
                "the lawful basis is consent, so consent cannot be not_required",
            )
        elif basis.article6 == "consent" and clause.consent == "required_unless_safeguarding":
            # An override shares against a refusal: its record would claim consent it lacks.
            # Art 9 and Art 10 conditions are replaced on an override (_index); Art 6 is not.
            self.add(
                src,
                (*base, "consent"),
                "article6 is consent, so consent cannot be required_unless_safeguarding "
                "(an override shares without it): use required, or another article6 basis",
            )

    def paths(self, src: Source, loc: tuple[int | str, ...], paths: tuple[str, ...]) -> None:
        seen: set[str] = set()
        for k, path in enumerate(paths):
            if path not in _FIELDS:
                self.add(src, (*loc, k), _unknown(path, _FIELDS, "field path"))
            elif path in seen:
                self.add(src, (*loc, k), f"field path {path!r} listed twice")
            seen.add(path)

    def condition(
        self, src: Source, loc: tuple[int | str, ...], source: str, named: str
    ) -> Condition | None:
        cond, problems = compile_condition(source)
        if cond is not None:
            problems = value_problems(source, self.vocabulary)
        for msg in problems:
            self.add(src, loc, f"{named}: {msg}")
        if problems:
            return None
        if cond is not None and (failed := probe(cond)):
            self.add(src, loc, f"{named}: {failed}")
            return None
        return cond

    def restrictions(self) -> None:
        src: Source = ("restrictions",)
        ids: set[str] = set()
        for i, restriction in enumerate(self.bundle.restrictions):
            base: tuple[int | str, ...] = ("restrictions", i)
            if restriction.id in ids:
                self.add(src, (*base, "id"), f"duplicate restriction id {restriction.id!r}")
            ids.add(restriction.id)
            if restriction.withhold != "all":
                if not restriction.withhold:
                    self.add(src, (*base, "withhold"), "withholds nothing")
                self.paths(src, (*base, "withhold"), restriction.withhold)
            for k, kind in enumerate(restriction.except_kinds):
                if msg := _known(kind, PARTY_KINDS, "party kind"):
                    self.add(src, (*base, "except_kinds", k), msg)
            cond = self.condition(
                src, (*base, "when"), restriction.when, f"restriction {restriction.id!r}"
            )
            if cond is not None:
                self.conditions[("restriction", i)] = cond


def check_bundle(
    bundle: Bundle,
    where: Where,
    known_parties: frozenset[str] = frozenset(),
    *,
    parties_read: bool = True,
) -> tuple[list[str], Conditions]:
    """Every semantic problem in ``bundle`` (empty when sound) and its compiled conditions.
    ``parties_read`` False: the parties file could not be read, so no party is "unknown"."""
    checker = _Checker(bundle, where, known_parties, parties_read)
    checker.run()
    return checker.problems, checker.conditions


def check_loose(
    bundle: Bundle,
    where: Where,
    loose: Iterable[LooseClause],
    known_parties: frozenset[str] = frozenset(),
    *,
    parties_read: bool = True,
) -> list[str]:
    """The semantic problems of clauses whose agreement failed its shape check (``_loose``),
    so that one misspelt word does not hide the rest of a file until it is fixed. ``bundle``
    is what loaded (its parties name the known ones); nothing is said at a stand-in's place.
    """
    checker = _Checker(bundle, where, known_parties, parties_read)
    for clause in loose:
        checker.reported = tuple(("clauses", clause.index, name) for name in clause.stand_ins)
        # A stand-in id is no name: the clause is then known by its place alone.
        cid = "?" if "id" in clause.stand_ins else repr(clause.clause.id)
        named = f"agreement {clause.agreement!r}, clause {cid}"
        checker.clause(clause.source, clause.index, clause.clause, named)
    return checker.problems


def bundle_warnings(bundle: Bundle, place: Place = nowhere) -> list[str]:
    """What is allowed but probably not meant, one line each, naming agreement and clause.

    A ``school:of-child`` clause without ``subjects`` shares everyone the default covers
    (docs/policy-language.md §3): the school would hear about the parents and the other
    adults, an alleged perpetrator included, not only its pupils. A lawful basis that does
    not fit the clause's senders is in ``_basis_warnings``; clauses giving one recipient a
    field in different forms, in ``_treatments``.
    """
    out: list[str] = []
    for agreement in bundle.agreements:
        for clause in agreement.clauses:
            named = f"{place(agreement, clause)}agreement {agreement.id!r}, clause {clause.id!r}"
            if "school:of-child" in clause.to and clause.subjects is None:
                out.append(
                    f"{named}: school:of-child without subjects also tells the school about "
                    "the adults; name the roles, e.g. subjects: [child]"
                )
            out.extend(f"{named}: {said}" for said in _basis_warnings(bundle, clause))
    out.extend(treatment_warnings(bundle, place))
    return out


_POLICE_EVENTS: Final = "police."
# The police events that tell of an incident or an allegation, offence data (Art 10) as a
# rule. A missing episode rarely is (a child gone missing is no offence), so it is not
# warned of: a clause carrying only it would be asked for a condition it seldom needs.
_OFFENCE_EVENTS: Final = frozenset({"police.domestic_incident", "police.child_concern"})
_DESK_KIND_WORDS: Final = {
    "coordinating_team": "a co-ordinating team",
    "hub": "a hub",
    "school": "a school",
}


def _basis_warnings(bundle: Bundle, clause: Clause) -> list[str]:
    """docs/policy-language.md §3, lawful bases. A party's kind cannot say it is the police
    (they are an ``agency``, as an NHS trust is), but an event type can: only the police
    send ``police.*`` events. So ``law_enforcement``, a competent authority's disclosure, is
    shown to fit only agencies sending police events; and a clause carrying a police incident
    or concern (``_OFFENCE_EVENTS``) carries offence data, which needs ``article10``."""
    out: list[str] = []
    basis = clause.lawful_basis
    offences = [t for t in clause.event_types if t in _OFFENCE_EVENTS]
    if "law_enforcement" in {basis.article9, basis.article10}:
        said = "law_enforcement is a competent authority's (the police's) disclosure"
        desks = [
            (pid, party.kind)
            for pid in clause.from_
            if (party := bundle.parties.get(pid)) is not None and party.kind != "agency"
        ]
        others = [t for t in clause.event_types if not t.startswith(_POLICE_EVENTS)]
        if desks:
            pid, kind = desks[0]
            out.append(f"{said}, which {pid}, {_DESK_KIND_WORDS.get(kind, kind)}, is not")
        elif others:
            out.append(
                f"{said}, but the clause shares {others[0]}, not a police event: nothing "
                "shows its sender is one"
            )
    if offences and basis.article10 is None:
        out.append(
            f"shares police events ({', '.join(offences)}) without article10: police "
            "information about incidents is usually criminal offence data (allegations "
            "included), which needs an Art 10 condition; add one, or record in the "
            "agreement's DPIA why none applies"
        )
    return out


def check_flags(bundle: Bundle, where: Where) -> tuple[list[str], tuple[CompiledFlagRule, ...]]:
    """Every problem in the bundle's flag rules and, when there is none, the compiled rules
    in file order (each ``when`` compiled exactly once, here)."""
    src: Source = ("flags",)
    problems: list[str] = []
    compiled: list[CompiledFlagRule] = []
    ids: set[str] = set()
    for i, rule in enumerate(bundle.flags):
        base: tuple[int | str, ...] = ("flags", i)
        if rule.id in ids:
            problems.append(f"{where(src, (*base, 'id'))}: duplicate flag rule id {rule.id!r}")
        ids.add(rule.id)
        done, found = compile_flag_rule(rule)
        problems.extend(f"{where(src, (*base, key))}: {msg}" for key, msg in found)
        if done is not None:
            compiled.append(done)
    return problems, (tuple(compiled) if not problems else ())


def plain_where(source: Source, loc: tuple[int | str, ...]) -> str:
    """Locations for bundles built in code (no files): ``agreement[0].clauses[1].share``."""
    head = f"{source[0]}[{source[1]}]" if len(source) > 1 else str(source[0])
    path = fmt_path(loc)
    return f"{head}: {path}" if path else head
