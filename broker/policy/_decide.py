"""``decide``: the seven steps of docs/policy-language.md §6, one by one, with no I/O.

1. Candidates: every party a clause of a non-draft agreement routes this (sender, type) to,
   selectors resolved (``hub:locality``: hubs whose district or sector covers a child
   subject's postcode, any subject's when there is no child; ``school:of-child``: schools
   whose URN a child subject names, each getting only its own pupils among the children and
   never anyone, of any role, whose URN names another school).
2. Per candidate: a suspended sender or recipient → ``party-inactive``; a ``withhold: all``
   restriction that holds (recipient kind not excepted) → ``suppressed``; otherwise each
   clause gives ``agreement-inactive``, ``condition-false``, a consent reason, a share or an
   override; a plain share wins, then an override, else the reason of highest precedence.
3. Field restrictions withhold fields from a share; transforms are named for ``redact``.

Fail-safe on CEL runtime errors: a clause condition that cannot be evaluated does not hold
(no share); a restriction that cannot be evaluated does hold (withhold).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from broker.events import ConsentRecord, ContactEvent, Subject
from broker.policy._cel import EventActivation
from broker.policy._decision import REASON_PRECEDENCE, ClauseRef, Decision, SubjectScope
from broker.policy._index import CompiledClause, CompiledRestriction, Index, canonical_fields
from broker.policy._transform import least_revealing

__all__ = ["covering_hubs", "decide", "hub_postcodes"]

_RANK = {reason: i for i, reason in enumerate(REASON_PRECEDENCE)}
_REFUSALS_LIMIT = 4096
# Share templates have their own bound, of the same size: the cache is cleared when full.
_SHARES_LIMIT = 4096
_STATE_RANK = {"withdrawn": 2, "refused": 1, "given": 0}

Entry = tuple[CompiledClause, tuple[int, ...]]
# (outcome, reason, clause)
Result = tuple[str, str | None, CompiledClause]


def _of_school(s: Subject, urn: str | None) -> bool:
    """Whether a school reached by ``school:of-child`` (``urn`` its URN; None for any other
    recipient) may hear about ``s``: a child only at this school; anyone else (a sibling, a
    parent) unless their URN names another school, which would tell one school about another's
    pupil."""
    if urn is None:
        return True
    if s.role == "child":
        return s.school_urn == urn
    return s.school_urn is None or s.school_urn == urn


def hub_postcodes(event: ContactEvent) -> list[str]:
    """The postcodes ``hub:locality`` reads: the children's, or everyone's with no child."""
    subjects = event.subjects
    children = [s for s in subjects if s.role == "child"]
    return [s.postcode for s in children or subjects if s.postcode is not None]


def covering_hubs(index: Index, event: ContactEvent) -> list[str]:
    """The hubs ``hub:locality`` finds for ``event``: those whose district or sector covers
    a postcode it reads (``hub_postcodes``). One answer for every clause (explain says which
    clauses it left with no hub)."""
    out: dict[str, None] = {}
    for postcode in hub_postcodes(event):
        district = postcode.split(" ", 1)[0]
        for hub in index.hubs_by_district.get(district, ()):
            out[hub] = None
        for hub in index.hubs_by_sector.get(postcode[:-2], ()):
            out[hub] = None
    return list(out)


def consent_subjects(event: ContactEvent) -> tuple[int, ...]:
    """Whose consent a decision under a clause that needs consent rests on (the children's): the
    event's children, or every subject when it names none. A withdrawal by any of them must
    recall what was shared on it, whoever the share was about."""
    subjects = event.subjects
    children = tuple(i for i, s in enumerate(subjects) if s.role == "child")
    return children or tuple(range(len(subjects)))  # as _Run.consent_subjects


class _Run:
    """State for one call of ``decide``; every lookup is computed at most once."""

    def __init__(
        self, index: Index, event: ContactEvent, consents: Sequence[ConsentRecord], at: datetime
    ) -> None:
        self.index = index
        self.event = event
        self.consents = consents
        self.at = at
        self.day = at.astimezone(UTC).date()
        self.act = EventActivation(event, at, index.cel_shared)
        subjects = event.subjects
        self.children = tuple(i for i, s in enumerate(subjects) if s.role == "child")
        self.consent_subjects = self.children or tuple(range(len(subjects)))  # as below
        self._subjects_for: dict[tuple[int, str | None], tuple[int, ...]] = {}
        self._restriction: dict[tuple[str, str | None], bool] = {}
        self._consent: dict[tuple[str, str], str] = {}
        self._records: dict[int, list[ConsentRecord]] | None = None
        sg = event.safeguarding
        if sg.justified:  # a readable justification, not blank nor invisible
            self.override: str | None = "safeguarding_concern"
        elif event.need_level == 4:
            self.override = "need_level_4"
        else:
            self.override = None

    # -- candidates -------------------------------------------------------------------
    def subjects_for(self, cc: CompiledClause, urn: str | None) -> tuple[int, ...]:
        key = (cc.order, urn)
        found = self._subjects_for.get(key)
        if found is None:
            roles = cc.roles
            found = tuple(
                i
                for i, s in enumerate(self.event.subjects)
                if (roles is None or s.role in roles) and _of_school(s, urn)
            )
            self._subjects_for[key] = found
        return found

    def hubs(self) -> list[str]:
        return covering_hubs(self.index, self.event)

    def schools(self) -> list[tuple[str, str]]:
        out: dict[str, str] = {}
        subjects = self.event.subjects
        for i in self.children:
            urn = subjects[i].school_urn
            if urn is not None and (school := self.index.school_by_urn.get(urn)) is not None:
                out.setdefault(school, urn)
        return list(out.items())

    def candidates(self, clauses: tuple[CompiledClause, ...]) -> dict[str, list[Entry]]:
        found: dict[str, list[Entry]] = {}
        hubs: list[str] | None = None
        schools: list[tuple[str, str]] | None = None
        for cc in clauses:
            if cc.explicit_to:
                subj = self.subjects_for(cc, None)
                for rid in cc.explicit_to:
                    found.setdefault(rid, []).append((cc, subj))
            if cc.to_hubs:
                if hubs is None:
                    hubs = self.hubs()
                if hubs:
                    subj = self.subjects_for(cc, None)
                    for rid in hubs:
                        found.setdefault(rid, []).append((cc, subj))
            if cc.to_schools:
                if schools is None:
                    schools = self.schools()
                for rid, urn in schools:
                    found.setdefault(rid, []).append((cc, self.subjects_for(cc, urn)))
        return found

    # -- conditions and consent -------------------------------------------------------
    def restriction_holds(self, r: CompiledRestriction, rid: str) -> bool:
        key = (r.id, rid if r.when.reads_recipient else None)
        held = self._restriction.get(key)
        if held is None:
            recipient = self.index.cel_parties[rid] if r.when.reads_recipient else None
            # An error counts as holding: when unsure, withhold.
            held = r.when.evaluate(self.act, recipient) is not False
            self._restriction[key] = held
        return held

    def records(self) -> dict[int, list[ConsentRecord]]:
        if self._records is None:
            at = self.at
            live = [r for r in self.consents if r.in_force(at)]
            subjects = self.event.subjects
            self._records = {}
            for i in self.consent_subjects:
                mine = [r for r in live if r.subject.matches(subjects[i])]
                # Latest first; on a tie the more protective state wins.
                mine.sort(key=lambda r: (r.recorded_at, _STATE_RANK[r.state]), reverse=True)
                self._records[i] = mine
        return self._records

    def consent_state(self, purpose: str, rid: str, kind: str) -> str:
        key = (purpose, rid)
        state = self._consent.get(key)
        if state is not None:
            return state
        if not self.consents:
            state = "missing"
        else:
            states = []
            for records in self.records().values():
                first = next((r for r in records if r.covers(purpose, rid, kind)), None)
                states.append(first.state if first is not None else "missing")
            if "withdrawn" in states:
                state = "withdrawn"
            elif "refused" in states:
                state = "refused"
            elif states and all(s == "given" for s in states):
                state = "given"
            else:
                state = "missing"
        self._consent[key] = state
        return state

    def clause_result(self, cc: CompiledClause, rid: str, kind: str) -> Result:
        if not cc.approved or not (cc.valid_from <= self.day <= cc.valid_until):
            return ("not_shared", "agreement-inactive", cc)
        if cc.when is not None:
            recipient = self.index.cel_parties[rid] if cc.when.reads_recipient else None
            if cc.when.evaluate(self.act, recipient) is not True:
                return ("not_shared", "condition-false", cc)
        if cc.consent == "not_required":
            return ("shared", None, cc)
        state = self.consent_state(cc.purpose, rid, kind)
        if state == "given":
            return ("shared", None, cc)
        if cc.consent == "required_unless_safeguarding" and self.override is not None:
            return ("shared_override", None, cc)
        return ("not_shared", f"consent-{state}", cc)

    # -- one candidate ----------------------------------------------------------------
    def decide_one(self, rid: str, entries: list[Entry]) -> Decision:
        index = self.index
        party = index.parties[rid]
        kind = party.kind
        sender = index.parties.get(self.event.sender)
        if party.status != "active" or sender is None or sender.status != "active":
            return self.refusal(rid, kind, "party-inactive", entries, ())
        for r in index.restrictions:
            if r.withhold_all and kind not in r.except_kinds and self.restriction_holds(r, rid):
                return self.refusal(rid, kind, "suppressed", entries, (r.id,))
        results = [self.clause_result(cc, rid, kind) for cc, _ in entries]
        shared = [i for i, res in enumerate(results) if res[0] == "shared"]
        if shared:
            return self.share(rid, kind, "shared", [entries[i] for i in shared])
        override = [i for i, res in enumerate(results) if res[0] == "shared_override"]
        if override:
            return self.share(rid, kind, "shared_override", [entries[i] for i in override])
        reason = min((res[1] for res in results if res[1] is not None), key=_RANK.__getitem__)
        worst = [entries[i] for i, res in enumerate(results) if res[1] == reason]
        return self.refusal(rid, kind, reason, worst, ())

    def _base(self, rid: str, kind: str, winners: list[Entry], override: bool) -> dict[str, Any]:
        refs: list[ClauseRef] = []
        for cc, _ in winners:
            ref = cc.override_ref if override else cc.ref
            if ref not in refs:
                refs.append(ref)
        first = refs[0]
        event = self.event
        return {
            "event_id": event.event_id,
            "event_type": event.type,
            "sender": event.sender,
            "recipient": rid,
            "recipient_kind": kind,
            "clause_ids": tuple(dict.fromkeys(r.clause_id for r in refs)),
            "agreement_id": first.agreement_id,
            "agreement_version": first.agreement_version,
            "purpose": first.purpose,
            "lawful_basis": first.lawful_basis,
            "consent": self.consent_state(first.purpose, rid, kind),
            "consent_rule": first.consent,
            "grounds": tuple(refs),
            "decided_at": self.at,
            "policy_version": self.index.version,
        }

    def refusal(
        self, rid: str, kind: str, reason: str, entries: list[Entry], restrictions: tuple[str, ...]
    ) -> Decision:
        # A refusal for the same recipient, reason, clauses and consent state is the same
        # decision for every event but for the event and the time: validated once, then
        # copied (pydantic validation is most of a refusal's cost, several per event).
        event = self.event
        key = (rid, reason, tuple((id(cc), not subj) for cc, subj in entries), restrictions,
               self.consent_state(entries[0][0].ref.purpose, rid, kind), event.type,
               event.sender)  # fmt: skip
        refusals = self.index.refusals
        template = refusals.get(key)
        if template is not None:
            # Fresh dicts: a copy is shallow, and no decision may share a mutable value.
            update = {"event_id": event.event_id, "decided_at": self.at,
                      "transforms": {}, "subject_roles": {}}  # fmt: skip
            return template.model_copy(update=update)
        fields: set[str] = set()
        if reason == "suppressed":
            for cc, subj in entries:
                fields |= _fields(cc, subj)  # what would have gone: no one's, if no one matched
        base = self._base(rid, kind, entries, override=False)
        base.update(
            outcome="not_shared",
            reason=reason,
            fields_withheld=canonical_fields(fields),
            restrictions=restrictions,
            # Given, not defaulted: pydantic deep-copies a mutable default on every model.
            transforms={},
            subject_roles={},
        )
        decision = Decision.model_validate(base)
        if len(refusals) >= _REFUSALS_LIMIT:
            refusals.clear()
        refusals[key] = decision
        return decision

    def share(self, rid: str, kind: str, outcome: str, winners: list[Entry]) -> Decision:
        if len(winners) == 1:
            cc, subj = winners[0]
            fields: set[str] | frozenset[str] = _fields(cc, subj)
            subjects: tuple[int, ...] | set[int] = subj
        else:
            fields = set()
            subjects = set()
            for cc, subj in winners:
                fields |= _fields(cc, subj)
                subjects.update(subj)
        withheld: set[str] = set()
        applied: list[str] = []
        for r in self.index.restrictions:
            if r.withhold_all or kind in r.except_kinds or not (r.withhold & fields):
                continue
            if self.restriction_holds(r, rid):
                withheld |= r.withhold & fields
                applied.append(r.id)
        if len(winners) == 1 and not withheld and winners[0][1]:
            cc = winners[0][0]
            shared = cc.share_ordered
            transforms = cc.transform
        else:
            shared, transforms = _combined(winners, withheld)
        ordered = tuple(sorted(subjects))
        scopes = _scopes(winners, withheld, ordered, shared, transforms)
        roles: dict[str, int] = {}
        event_subjects = self.event.subjects
        for i in ordered:
            role = event_subjects[i].role
            roles[role] = roles.get(role, 0) + 1
        override = outcome == "shared_override"
        # As a refusal: a share through the same clauses, restrictions and consent state is
        # the same decision for every event but for the event, the time and the people in it
        # (positions and counts by role, each from the validated event). Validated once, then
        # copied; per-person scopes depend on who is in the event, so those are validated each
        # time.
        key = None if scopes else self._share_key(rid, kind, outcome, winners, applied)
        if key is not None and (template := self.index.shares.get(key)) is not None:
            # Fresh dicts: a copy is shallow, and no decision may share a mutable value.
            update = {"event_id": self.event.event_id, "decided_at": self.at,
                      "subjects": ordered, "subject_roles": roles,
                      "transforms": dict(transforms)}  # fmt: skip
            return template.model_copy(update=update)
        base = self._base(rid, kind, winners, override=override)
        base.update(
            outcome=outcome,
            fields_shared=shared,
            fields_withheld=canonical_fields(withheld) if withheld else (),
            restrictions=tuple(applied),
            transforms=dict(transforms),
            subjects=ordered,
            subject_roles=roles,
            subject_scopes=scopes,
            review_required=override,
            override_grounds=self.override if override else None,
        )
        decision = Decision.model_validate(base)
        if key is not None:
            shares = self.index.shares
            if len(shares) >= _SHARES_LIMIT:
                shares.clear()
            shares[key] = decision
        return decision

    def _share_key(
        self, rid: str, kind: str, outcome: str, winners: list[Entry], applied: list[str]
    ) -> tuple[Any, ...]:
        """Everything a share's decision holds but the event's id, time and people."""
        override = outcome == "shared_override"
        first = winners[0][0].override_ref if override else winners[0][0].ref
        event = self.event
        # Whether each clause reached anyone: a clause's subject fields are shared only then.
        return (rid, outcome, tuple((id(cc), not subj) for cc, subj in winners), tuple(applied),
                self.consent_state(first.purpose, rid, kind), event.type, event.sender,
                self.override if override else None)  # fmt: skip


def _fields(cc: CompiledClause, subjects: tuple[int, ...]) -> frozenset[str]:
    """What ``cc`` shares in this event: its subject fields only when its ``subjects`` match
    someone (a decision listing ``subject.name`` that reached no one would tell the disclosure
    log and the recipient's desk of a disclosure that never happened)."""
    return cc.share if subjects else cc.share_no_subject


def _combined(winners: list[Entry], withheld: set[str]) -> tuple[tuple[str, ...], dict[str, str]]:
    """Fields = union of the winners' (less what restrictions withhold), and their transforms."""
    fields: set[str] = set()
    for cc, subj in winners:
        fields |= _fields(cc, subj)
    shared = canonical_fields(fields - withheld)
    transforms: dict[str, str] = {}
    for path in shared:
        kinds = [cc.transform.get(path) for cc, subj in winners if path in _fields(cc, subj)]
        reduced = [k for k in kinds if k is not None]
        # A field any winning clause shares plainly travels plainly (the fields are the
        # union); of different reductions the one revealing least, whatever the file order.
        if reduced and len(reduced) == len(kinds):
            transforms[path] = least_revealing(reduced)
    return shared, transforms


def _scopes(
    winners: list[Entry], withheld: set[str], ordered: tuple[int, ...],
    shared: tuple[str, ...], transforms: dict[str, str],
) -> tuple[SubjectScope, ...]:  # fmt: skip
    """Per-person fields when the winners cover different people; () when all get the same."""
    if len(winners) == 1 or all(set(subj) == set(ordered) for _, subj in winners):
        return ()
    scopes = []
    for i in ordered:
        own_fields, own_transforms = _combined([w for w in winners if i in w[1]], withheld)
        mine = tuple(f for f in own_fields if f.startswith("subject."))
        mine_tf = {p: k for p, k in own_transforms.items() if p.startswith("subject.")}
        scopes.append(SubjectScope(subject=i, fields=mine, transforms=mine_tf))
    everyone = tuple(f for f in shared if f.startswith("subject."))
    everyone_tf = {p: k for p, k in transforms.items() if p.startswith("subject.")}
    if all(s.fields == everyone and s.transforms == everyone_tf for s in scopes):
        return ()
    return tuple(scopes)


def decide(
    index: Index, event: ContactEvent, consents: Sequence[ConsentRecord], at: datetime
) -> list[Decision]:
    """One decision per candidate recipient, in a stable order (bundle order of clauses)."""
    if at.tzinfo is None:
        raise ValueError("the decision time must be timezone-aware")
    clauses = index.by_route.get((event.sender, event.type))
    if not clauses:
        return []
    run = _Run(index, event, consents, at)
    return [run.decide_one(rid, entries) for rid, entries in run.candidates(clauses).items()]
