"""Clauses that can share one field with one recipient in different forms: a warning each.

When several clauses share with a recipient, it gets the union of their fields
(docs/policy-language.md §6): a field any of them shares plainly travels plainly, and of
different transforms the one that reveals least applies (``_transform.least_revealing``).
That is a rule, not a mistake, so the bundle loads; but a second clause sharing
``subject.nhs_number`` plainly to a hub that the first gives only a pseudonym undoes the
pseudonym, and its author may not know. So ``accord policy check`` says so, naming both
clauses, the field and what the recipient gets.

Two clauses can meet when an agreement of each is not a draft, their dates overlap, a
sender and an event type are in both, and a party is a recipient of both (named, or a hub
for ``hub:locality``, a school for ``school:of-child``). A person's field meets only if
both clauses' ``subjects`` include a role in common (a per-person union, §6). Of a clause's
condition, only a part joined by ``&&`` that reads the recipient alone is weighed
(``recipient.id.startsWith('cog-')``, as the example bundle keeps each borough's clauses to
its hubs): false for a party, the clause never reaches it. Other conditions that can never
hold together are a reason to ignore the warning; nothing here can tell them apart.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import cel

from broker.events import FIELD_PATHS
from broker.policy._cel_ops import written
from broker.policy._cel_parse import Node, Op, parse
from broker.policy._model import Agreement, Bundle, Clause, Party
from broker.policy._places import Place, nowhere
from broker.policy._transform import least_revealing

__all__ = ["treatment_warnings"]

_KIND_OF_SELECTOR = {"hub:locality": "hub", "school:of-child": "school"}


def _conjuncts(node: Node) -> list[Node]:
    if isinstance(node, Op) and node.op == "&&":
        return [part for arg in node.args for part in _conjuncts(arg)]
    return [node]


def _recipient_tests(when: str | None) -> list[Any]:
    """The parts of ``when`` joined by ``&&`` that read the recipient and nothing else,
    compiled; a part that does not compile on its own is left out (it may hold)."""
    tree = parse(when) if when is not None else None
    out = []
    for part in _conjuncts(tree) if tree is not None else []:
        program = _compiled(written(part))
        if program is not None and set(program.variables()) == {"recipient"}:
            out.append(program)
    return out


def _compiled(source: str) -> Any:
    try:
        return cel.compile(source)
    except Exception:  # noqa: BLE001  # as _cel: any failure to compile is "not weighed"
        return None


def _cel_party(pid: str, party: Party) -> dict[str, Any]:
    # As _index gives a condition its recipient.
    return {
        "id": pid, "kind": party.kind, "name": party.name,
        "localities": list(party.localities), "urn": party.urn, "status": party.status,
    }  # fmt: skip


def _false(program: Any, recipient: dict[str, Any]) -> bool:
    try:
        return program.execute({"recipient": recipient}) is False
    except Exception:  # noqa: BLE001  # failing is "could not decide": it may hold
        return False


def _refuses(tests: list[Any], recipient: dict[str, Any]) -> bool:
    return any(_false(program, recipient) for program in tests)


def _recipients(bundle: Bundle, clause: Clause) -> set[str]:
    out = {to for to in clause.to if to not in _KIND_OF_SELECTOR}
    kinds = {_KIND_OF_SELECTOR[to] for to in clause.to if to in _KIND_OF_SELECTOR}
    out.update(pid for pid, party in bundle.parties.items() if party.kind in kinds)
    tests = _recipient_tests(clause.when)
    if tests:
        parties = bundle.parties
        out = {p for p in out if p not in parties or not _refuses(tests, _cel_party(p, parties[p]))}
    return out


#: A clause of a non-draft agreement, with the parties it can reach (``_recipients``)
_Reach = tuple[Agreement, Clause, set[str]]


def _meeting(one: _Reach, other: _Reach) -> tuple[str, str, str] | None:
    """A recipient, sender and event type both clauses can apply to (the first of each), or
    None when they never meet."""
    (a1, c1, to1), (a2, c2, to2) = one, other
    if a1.valid_from > a2.valid_until or a2.valid_from > a1.valid_until:
        return None
    senders = set(c1.from_) & set(c2.from_)
    types = set(c1.event_types) & set(c2.event_types)
    recipients = to1 & to2
    if not (senders and types and recipients):
        return None
    return min(recipients), min(senders), min(types)


def _roles_meet(c1: Clause, c2: Clause) -> bool:
    return c1.subjects is None or c2.subjects is None or bool(set(c1.subjects) & set(c2.subjects))


def _form(kind: str | None) -> str:
    return "plainly" if kind is None else f"as {kind}"


def treatment_warnings(bundle: Bundle, place: Place = nowhere) -> list[str]:
    """One line for each field two clauses that can meet share in different forms, placed
    (``place``) at the first of the two."""
    # Each clause's recipients once (a CEL run per party): per pair, a bundle of hundreds
    # of clauses and parties would take minutes to check.
    clauses: list[_Reach] = [
        (a, c, _recipients(bundle, c))
        for a in bundle.agreements
        if a.status != "draft"
        for c in a.clauses
    ]
    out: list[str] = []
    for one, other in combinations(clauses, 2):
        met = _meeting(one, other)
        if met is None:
            continue
        recipient, sender, etype = met
        (a1, c1, _), (a2, c2, _) = one, other
        common = set(c1.share) & set(c2.share)
        for path in (p for p in FIELD_PATHS if p in common):
            t1, t2 = c1.transform.get(path), c2.transform.get(path)
            if t1 == t2 or (path.startswith("subject.") and not _roles_meet(c1, c2)):
                continue
            if t1 is None or t2 is None:
                gets = "the share without a transform wins, so it gets the field as it is"
            else:
                gets = f"{least_revealing((t1, t2))}, which reveals less, applies"
            out.append(
                f"{place(a1, c1)}agreement {a1.id!r}, clause {c1.id!r} and agreement"
                f" {a2.id!r}, clause {c2.id!r} can both share with {recipient} ({sender}'s"
                f" {etype}), and share {path} {_form(t1)} and {_form(t2)}: when both apply, {gets}"
            )
    return out
