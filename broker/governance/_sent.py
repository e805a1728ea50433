"""What a disclosure log says was sent, in words a family can read: each field as it travelled
(a transformed field under what it became, never as the original), the consent state with
whether the agreement needed consent, and the notes said once per answer; and what a decision
sent about one person when clauses about different people combined (``sent_about``).

A SAR answer is sent to the family: ``subject.nhs_number`` on a line whose decision
pseudonymised it would say the child's NHS number went where only a pseudonym did. The
transform kinds are the policy language's (``broker.policy.TRANSFORMS``, docs/policy-language.md),
as ``redact`` applies them; a kind with no words here is named by its id.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from broker.governance._conditions import unmet_conditions
from broker.governance._grounds import str_tuple

if TYPE_CHECKING:
    from broker.policy import Policy

__all__ = [
    "ALWAYS_SENT",
    "CONSENT_STATE_MEANINGS",
    "NOT_SENT_FIELDS",
    "TRANSFORM_WORDS",
    "answer_notes",
    "consent_words",
    "decision_consent_rule",
    "field_sent_as",
    "field_words",
    "scope_words",
    "sent_about",
    "transforms_of",
]

# Every field a policy may share (broker.events.FIELD_PATHS), in words; a path with none is
# shown as it is.
_FIELD_WORDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "subject.name": "name",
        "subject.dob": "date of birth",
        "subject.nhs_number": "NHS number",
        "subject.address": "address",
        "subject.postcode": "postcode",
        "subject.school_urn": "school",
        "subject.role": "role (child, parent...)",
        "event.type": "kind of event",
        "event.occurred_at": "when it happened",
        "event.reference": "the sender's reference",
        "event.need_level": "level of need",
        "event.child_present": "whether a child was present",
        "event.summary": "summary",
        "event.child_voice": "the child's own words",
        "event.categories": "categories of concern",
        "event.location": "location",
        "event.service": "service",
        "event.outcome": "outcome of a referral",
    }
)


# What each of the policy language's transform kinds leaves of a field (broker/policy/_redact.py).
TRANSFORM_WORDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "age_band": "age band only",
        "year_of_birth": "year only",
        "postcode_district": "district only",
        "initials": "initials only",
        "pseudonym": "as a pseudonym",
    }
)

# What travels with every shared record whatever the agreement shares (broker/policy/_redact.py,
# docs/policy-language.md "Clause keys": ``share``).
ALWAYS_SENT: Final = (
    "Every record shared also carried, whatever the agreement shares: its event id, the kind"
    " of event, the organisation that sent it and when it happened, and on what basis it was"
    " shared (agreement, clauses, purpose, lawful basis). A field listed with a note in"
    " brackets was sent only in that reduced form, never as the original."
)
# Said once where a line lists fields not sent ("withheld" would read as kept from the family).
NOT_SENT_FIELDS: Final = (
    "Fields not sent: fields the sharing agreement covers that were not sent to the recipient"
    " (a restriction kept them back, or the information was not shared at all). This answer"
    " does not keep them from you."
)


# The consent column's states (broker/policy/_decision.py ConsentStateOut), and what "not
# needed" and "overridden" add. Only children's consent is looked up (docs/policy-language.md
# §6 step 5): a parent named in the same information has none that decides.
CONSENT_STATE_MEANINGS: Final[Mapping[str, str]] = MappingProxyType(
    {
        # As REASON_MEANINGS words the consent reasons: a decision covers every child the
        # information named, not only this child.
        "given": (
            "consent for this purpose and organisation was on record as given for every child"
            " the information was about."
        ),
        "refused": (
            "for a child the information was about (this child or another named in it), the"
            " latest consent recorded for this purpose and organisation was a refusal."
        ),
        "withdrawn": (
            "for a child the information was about (this child or another named in it), the"
            " latest consent recorded for this purpose and organisation was a withdrawal."
        ),
        "missing": (
            "consent for this purpose and organisation was not on record for every child the"
            " information was about (this child or another named in it)."
        ),
        "not needed": (
            "the sharing agreement does not rest on consent but on the lawful basis shown: the"
            " consent state did not decide the sharing, and refusing or withdrawing consent"
            " would not have stopped it."
        ),
        "overridden": (
            "the sharing agreement needs consent, but allows sharing without it, even against a"
            " refusal, where the organisation sending it flagged a safeguarding concern and"
            " wrote why; this share was made so, as a safeguarding override, and an information"
            " governance officer reviews every one."
        ),
    }
)
# What a consent rule adds to the state where consent did not decide the share
# (broker/policy/_decision.py ConsentRule).
_NOT_NEEDED: Final = "not needed: the agreement rests on its lawful basis, not consent"
_OVERRIDDEN: Final = (
    "overridden: shared without consent under a safeguarding override, for IG review"
)
_NOT_GIVEN: Final = frozenset({"refused", "withdrawn", "missing"})


_SHARES: Final = frozenset({"shared", "shared_override"})


def field_words(path: str) -> str:
    """A field path in words (``subject.dob``: ``date of birth``); the path when it has none."""
    return _FIELD_WORDS.get(path, path)


def field_sent_as(path: str, kind: str | None) -> str:
    """``path`` in words as it was sent: ``date of birth`` when ``kind`` is None, else with
    what the transform left of it, e.g. ``NHS number (as a pseudonym)``; a kind with no
    words is named by its id."""
    field = field_words(path)
    if kind is None:
        return field
    words = TRANSFORM_WORDS.get(kind)
    return f"{field} ({words})" if words else f"{field} (transformed: {kind})"


def sent_about(
    d: Mapping[str, Any], keys: Sequence[str], key: str | Collection[str] | None
) -> tuple[tuple[str, ...], object]:
    """The fields and transforms a decision sent about the person filed under ``key`` (a
    look-up by demographics searches several keys: all of them, one person's).

    Clauses covering different people combine into decision-wide fields and transforms that
    are no one's (a field is transformed there only if every clause transforms it, and lists
    what any clause shares about anyone); ``redact`` sends each person their own scope, so a
    SAR says that, plus the event's own fields. ``d`` is a ``decided`` record's data, ``keys``
    its ``subject_keys``, in the order of its ``subjects``. A decision without scopes sent
    everyone the same: decision-wide. One person in two positions (a young mother listed as
    a child and as a parent) had each position's scope sent: a field sent in full in either
    went in full, and is shown so.
    """
    fields, transforms = str_tuple(d.get("fields_shared")), d.get("transforms")
    scopes, subjects = d.get("subject_scopes"), d.get("subjects")
    if key is None or not scopes or not isinstance(scopes, list):
        return fields, transforms
    if not isinstance(subjects, list) or len(subjects) != len(keys):
        return fields, transforms
    wanted = {key} if isinstance(key, str) else set(key)
    theirs = {subjects[j] for j, k in enumerate(keys) if k in wanted}
    if not theirs:
        return fields, transforms
    kinds = dict(transforms) if isinstance(transforms, dict) else {}
    # The event's own fields travel with the record whoever they are about.
    own = [f for f in fields if not f.startswith("subject.")]
    own_kinds: dict[str, object] = {
        p: v for p, v in kinds.items() if not str(p).startswith("subject.")
    }
    # Each of the person's fields -> the kind of every scope that sent it (None: in full).
    sent: dict[str, list[object]] = {}
    for scope in scopes:
        # With scopes, a person without one was sent nothing of theirs (``redact``).
        if isinstance(scope, dict) and scope.get("subject") in theirs:
            scope_kinds = scope.get("transforms")
            scope_kinds = scope_kinds if isinstance(scope_kinds, dict) else {}
            for f in str_tuple(scope.get("fields")):
                sent.setdefault(f, []).append(scope_kinds.get(f))
    for f, used in sent.items():
        if f not in own:
            own.append(f)
        # As policy's ``_combined``: one form only when every position sent it so; a field
        # any position sent in full, or in two forms, is shown without a reduced form.
        if used[0] is not None and all(k == used[0] for k in used):
            own_kinds[f] = used[0]
    return tuple(own), own_kinds


def transforms_of(value: object) -> tuple[tuple[str, str], ...]:
    """A decision's ``transforms`` (field path -> kind), sorted; () for one without."""
    if not isinstance(value, dict):
        return ()
    return tuple(sorted((str(k), str(v)) for k, v in value.items()))


def decision_consent_rule(d: Mapping[str, Any]) -> str | None:
    """The consent rule a ``decided`` record's data says the whole decision rests on, for
    ``consent_words``; None when its grounds' rules differ or cannot be told.

    ``consent_rule`` is the first winning clause's only: under a ``not_required`` clause and a
    ``required`` one together, "given (not needed)" would be false of what the second shared.
    Each recorded ground carries its clause's rule; a record without grounds has one ground
    when it names at most one clause.
    """
    rule = d.get("consent_rule")
    rule = rule if isinstance(rule, str) else None
    grounds = d.get("grounds")
    if isinstance(grounds, list) and grounds:
        rules = {g.get("consent") if isinstance(g, dict) else None for g in grounds}
        if len(grounds) == 1:
            return rule
        return rule if rules == {rule} else None
    return rule if len(str_tuple(d.get("clause_ids"))) <= 1 else None


def consent_words(state: str | None, rule: str | None, outcome: str | None) -> str | None:
    """A decision's consent state as a reader sees it: ``missing (not needed: ...)`` (any state)
    where the agreement does not rest on consent (``rule`` ``not_required``); ``refused
    (overridden: ...)`` where consent was needed, not given, and a safeguarding override
    shared anyway (``required_unless_safeguarding``, ``shared_override``); the state alone
    otherwise (and for a record without a rule)."""
    if state is None:
        return None
    if rule == "not_required":
        # "given" too: a family must not read it as consent a withdrawal would stop.
        return f"{state} ({_NOT_NEEDED})"
    overridden = rule == "required_unless_safeguarding" and outcome == "shared_override"
    if overridden and state in _NOT_GIVEN:
        return f"{state} ({_OVERRIDDEN})"
    return state


def answer_notes(
    lines: Iterable[object], *, conditions: bool = False, policy: Policy | None = None
) -> list[str]:
    """The notes a disclosure log says once: what travels with every shared record (when it
    lists a share, a delivery or an opening), what "fields not sent" means (when a line lists
    any), and what each consent state its decisions show means (``missing`` alone reads as
    sharing without consent, which a share that needed none was not).

    ``conditions``: for the officer's views (the console, the table), each clause a
    ``condition-false`` decision names, with its condition from ``policy``, the bundle loaded
    there (None: none is), when the decision was made under that version (``_conditions``)."""
    lines = list(lines)
    shared = held_back = False
    states: set[str] = set()
    for line in lines:
        kind, outcome = getattr(line, "kind", None), getattr(line, "outcome", None)
        shared = shared or kind in ("delivered", "opened") or outcome in _SHARES
        held_back = held_back or bool(getattr(line, "fields_withheld", None))
        shown = getattr(line, "shown_consent", None) if kind == "decision" else None
        if isinstance(shown, str) and shown:
            state, _, why = shown.partition(" (")
            states.add(state)
            for note in ("not needed", "overridden"):
                if why.startswith(note):
                    states.add(note)
    notes = [ALWAYS_SENT] if shared else []
    notes += [NOT_SENT_FIELDS] if held_back else []
    notes += [
        f'Consent "{state}": {text}'
        for state, text in CONSENT_STATE_MEANINGS.items()
        if state in states
    ]
    return notes + (unmet_conditions(lines, policy) if conditions else [])


def scope_words(values: Iterable[str], *, every: str) -> tuple[str, ...]:
    """A consent record's purposes (``every="purpose"``) or recipients (``"recipient"``) as
    a reader sees them, the one wording the console, the table and the page share: ``*`` is
    ``every purpose`` or ``every recipient``, ``kind:K`` ``every K`` (``every coordinating
    team``), an id itself. A bare ``*`` is read aloud as "star", and ``kind:hub`` is code.
    JSON and CSV keep the record's own values."""
    return tuple(
        f"every {every}" if v == "*"
        else f"every {v.removeprefix('kind:').replace('_', ' ')}" if v.startswith("kind:")
        else v
        for v in values
    )  # fmt: skip
