"""The compiled form of a bundle: everything ``decide`` needs, precomputed once per bundle.

Clauses are indexed by (sender, event type), so a decision touches only clauses that could
apply; draft agreements are left out entirely (not in force: no decisions at all). Party
lookups for the two selectors are maps: postcode district / sector → hubs, URN → school.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from broker.events import FIELD_PATHS
from broker.policy._cel import Condition
from broker.policy._cel_reads import NOTHING, Reads
from broker.policy._check import Conditions
from broker.policy._decision import ClauseRef, Decision
from broker.policy._model import Bundle, Party

__all__ = ["CompiledClause", "CompiledRestriction", "Index", "build_index"]

_ORDER = {path: i for i, path in enumerate(FIELD_PATHS)}


def canonical_fields(paths: set[str] | frozenset[str] | tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted(paths, key=_ORDER.__getitem__))


@dataclass(frozen=True, slots=True)
class CompiledClause:
    order: int  # position in the bundle, for deterministic output
    agreement_id: str
    approved: bool
    valid_from: date
    valid_until: date
    explicit_to: tuple[str, ...]
    to_hubs: bool
    to_schools: bool
    when: Condition | None
    roles: frozenset[str] | None
    share: frozenset[str]
    share_ordered: tuple[str, ...]
    # What the clause shares when its ``subjects`` match nobody in the event: the event's
    # own fields; a subject field reaching no one is not shared (nor is it in the decision).
    share_no_subject: frozenset[str]
    transform: dict[str, str]
    consent: str
    purpose: str
    ref: ClauseRef
    override_ref: ClauseRef  # the same clause with the override's Art 9 / Art 10 condition


@dataclass(frozen=True, slots=True)
class CompiledRestriction:
    id: str
    when: Condition
    withhold_all: bool
    withhold: frozenset[str]
    except_kinds: frozenset[str]


@dataclass(frozen=True, slots=True)
class Index:
    by_route: dict[tuple[str, str], tuple[CompiledClause, ...]]
    parties: dict[str, Party]
    cel_parties: dict[str, dict[str, Any]]
    hubs_by_district: dict[str, tuple[str, ...]]
    hubs_by_sector: dict[str, tuple[str, ...]]
    school_by_urn: dict[str, str]
    restrictions: tuple[CompiledRestriction, ...]
    version: str
    # What conditions evaluated on every event observe of it (the others are memoised): a
    # decision's shared CEL context holds only this, since the binding converts every value
    # it is given; a memoised condition makes its own small context when it has to run.
    cel_shared: Reads = NOTHING
    # Refusals already made, by what makes them (``_decide``): they live as long as the bundle.
    refusals: dict[tuple[Any, ...], Decision] = field(default_factory=dict)
    # Shares likewise, less what is the event's own (``_decide``).
    shares: dict[tuple[Any, ...], Decision] = field(default_factory=dict)


def _clause_refs(agreement_id: str, version: str, clause: Any) -> tuple[ClauseRef, ClauseRef]:
    ref = ClauseRef(
        agreement_id=agreement_id,
        agreement_version=version,
        clause_id=clause.id,
        purpose=clause.purpose,
        lawful_basis=clause.lawful_basis,
        consent=clause.consent,
    )
    # Overriding missing or refused consent rests on DPA 2018 Sch 1 para 18 (for offence data
    # as para 36 extends it, without its substantial-public-interest requirement): a condition
    # the clause named (explicit consent, say) would claim what the override does not have.
    # Article 6 stays: ``_check`` refuses ``consent`` there.
    special = {"article9": "safeguarding_children"}
    if clause.lawful_basis.article10 is not None:
        special["article10"] = "safeguarding_children"
    override = ref.model_copy(
        update={"lawful_basis": clause.lawful_basis.model_copy(update=special)}
    )
    return ref, override


def build_index(bundle: Bundle, conditions: Conditions, version: str) -> Index:
    routes: dict[tuple[str, str], list[CompiledClause]] = {}
    order = 0
    for i, agreement in enumerate(bundle.agreements):
        if agreement.status == "draft":
            continue
        for j, clause in enumerate(agreement.clauses):
            ref, override = _clause_refs(agreement.id, str(agreement.version), clause)
            compiled = CompiledClause(
                order=order,
                agreement_id=agreement.id,
                approved=agreement.status == "approved",
                valid_from=agreement.valid_from,
                valid_until=agreement.valid_until,
                explicit_to=tuple(dict.fromkeys(t for t in clause.to if ":" not in t)),
                to_hubs="hub:locality" in clause.to,
                to_schools="school:of-child" in clause.to,
                when=conditions.get((i, j)),
                roles=frozenset(clause.subjects) if clause.subjects is not None else None,
                share=frozenset(clause.share),
                share_ordered=canonical_fields(frozenset(clause.share)),
                share_no_subject=frozenset(p for p in clause.share if not p.startswith("subject.")),
                transform={
                    p: clause.transform[p] for p in canonical_fields(frozenset(clause.transform))
                },
                consent=clause.consent,
                purpose=clause.purpose,
                ref=ref,
                override_ref=override,
            )
            order += 1
            for sender in dict.fromkeys(clause.from_):
                for etype in dict.fromkeys(clause.event_types):
                    routes.setdefault((sender, etype), []).append(compiled)
    districts: dict[str, list[str]] = {}
    sectors: dict[str, list[str]] = {}
    schools: dict[str, str] = {}
    for pid, party in bundle.parties.items():
        if party.kind == "hub":
            for locality in party.localities:
                target = sectors if " " in locality else districts
                target.setdefault(locality.upper(), []).append(pid)
        elif party.kind == "school" and party.urn is not None:
            schools[party.urn] = pid
    restrictions = tuple(
        CompiledRestriction(
            id=r.id,
            when=conditions[("restriction", k)],
            withhold_all=r.withhold == "all",
            withhold=frozenset(() if r.withhold == "all" else r.withhold),
            except_kinds=frozenset(r.except_kinds),
        )
        for k, r in enumerate(bundle.restrictions)
    )
    cel_parties = {
        pid: {
            "id": pid,
            "kind": p.kind,
            "name": p.name,
            "localities": list(p.localities),
            "urn": p.urn,
            "status": p.status,
        }
        for pid, p in bundle.parties.items()
    }
    whens = [r.when for r in restrictions]
    for routed in routes.values():
        whens += [cc.when for cc in routed if cc.when is not None]
    shared = [c for c in whens if not (c.memoisable or c.view_keyed)]
    return Index(
        by_route={k: tuple(v) for k, v in routes.items()},
        parties=dict(bundle.parties),
        cel_parties=cel_parties,
        hubs_by_district={k: tuple(dict.fromkeys(v)) for k, v in districts.items()},
        hubs_by_sector={k: tuple(dict.fromkeys(v)) for k, v in sectors.items()},
        school_by_urn=schools,
        restrictions=restrictions,
        version=version,
        cel_shared=NOTHING.union(*(c.view for c in shared)),
    )
