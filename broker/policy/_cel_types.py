"""What each part of a condition is, followed through its macros: selects and operations that
fail, or are false, for every event.

``_cel_selects`` finds misspelt fields where the text spells out what they are read from.
This follows what each part of a condition is, on its syntax tree (``_cel_parse``): a macro's
variable (``all``, ``exists``, ``exists_one``, ``map``, ``filter``) is an item of the list it
iterates whenever that list is known, however the list was reached: ``(event.subjects)``,
a ``filter`` or an identity ``map`` of it, ``[event.subjects[0]]``, ``event.categories``,
``recipient.localities``, or a ``map`` to a subject's field. Each variable is bound where its
macro binds it, so an inner macro reusing the name hides the outer one. Then a select of a
field a subject or safeguarding does not have, or of any field of a string, number, boolean,
time or list (``c.name`` over ``event.categories``, ``s.age.years``) is a load error: at run
time it is a missing-key or type error, which a clause takes as "does not apply" and a
restriction as "applies", for every event. So is an operation on kinds CEL does not combine
(``recipient.urn == 146201``, ``event.need_level >= '2'``) and a call of literals that fails
(``duration('7d')``): ``_cel_ops`` says which. With the bundle's lists of what some fields
hold (``value_problems``), so is a comparison with a string no such field holds
(``recipient.id == 'cog-tiptn'``, ``s.role in ['Child']``).

The kinds are the declared types of what a condition is given (``broker.events``' models,
``broker.policy._index``'s recipient); an optional field may also be null, which only a
run-time value shows. Anything whose kind is not known (a map written in the condition, a
value from data, a variable over one, ``dyn(..)``) is not followed. Nothing here decides what a
condition may observe: that is ``_cel_reads``, which reads the text and stays conservative.
"""

from __future__ import annotations

from typing import Final

from broker.policy._cel_ops import (
    Kind,
    ListOf,
    Vocabulary,
    call_problem,
    named,
    operation,
    vocabulary_problems,
)
from broker.policy._cel_parse import (
    Call,
    Ident,
    Index,
    ListLit,
    Lit,
    MapLit,
    Node,
    Op,
    Select,
    parse,
)
from broker.policy._cel_reads import SAFEGUARDING_ATTRS
from broker.policy._cel_selects import subject_problem

__all__ = ["kind_problems", "value_problems"]

_MAPS: Final[dict[str, dict[str, Kind]]] = {
    "event": {
        "type": "string", "sender": "string", "occurred_at": "timestamp",
        "reference": "string", "need_level": "int", "child_present": "bool",
        "summary": "string", "child_voice": "string", "categories": ListOf("string"),
        "service": "string", "location": "string", "outcome": "string",
        "safeguarding": "safeguarding", "subjects": ListOf("subject"),
    },
    "recipient": {
        "id": "string", "kind": "string", "name": "string",
        "localities": ListOf("string"), "urn": "string", "status": "string",
    },
    "subject": {
        "role": "string", "age": "int", "school_urn": "string",
        "postcode_district": "string", "has_nhs_number": "bool",
    },
    "safeguarding": {"concern": "bool", "justification": "string"},
}  # fmt: skip
_MACROS: Final = frozenset({"all", "exists", "exists_one", "map", "filter"})
_RESULTS: Final[dict[str, Kind]] = {
    "size": "int", "int": "int", "uint": "uint", "double": "double", "string": "string",
    "bytes": "bytes", "bool": "bool", "timestamp": "timestamp", "duration": "duration",
    "contains": "bool", "startsWith": "bool", "endsWith": "bool", "matches": "bool",
    "has": "bool", "getFullYear": "int", "getMonth": "int", "getDate": "int",
    "getDayOfMonth": "int", "getDayOfWeek": "int", "getDayOfYear": "int", "getHours": "int",
    "getMinutes": "int", "getSeconds": "int", "getMilliseconds": "int",
}  # fmt: skip


def _field_problem(kind: Kind, name: str) -> str:
    # The wording of _cel_selects for the same mistakes, so one mistake is one problem.
    if kind == "subject":
        return subject_problem(name)
    if kind == "safeguarding":
        known = ", ".join(sorted(SAFEGUARDING_ATTRS))
        return f"CEL refers to unknown field event.safeguarding.{name} (known: {known})"
    return f"CEL selects field {name!r} of {named(kind)}, which has no fields"


class _Walk:
    def __init__(self, vocabulary: Vocabulary | None = None) -> None:
        self.problems: dict[str, None] = {}
        self.vocabulary = vocabulary
        self.values: dict[str, None] = {}

    def field_name(self, node: Node, scope: dict[str, Kind]) -> str | None:
        """What ``node`` selects, as "recipient.id" or "subject.role"; None if not a field."""
        if isinstance(node, Select):
            of, name = self.kind(node.operand, scope), node.field
        elif isinstance(node, Index) and isinstance(node.index, Lit) and node.index.value:
            of, name = self.kind(node.operand, scope), node.index.value
        else:
            return None
        return f"{of}.{name}" if isinstance(of, str) else None

    def field(self, of: Kind, name: str) -> Kind:
        """The kind of ``of.name``, noting a field ``of`` cannot have."""
        if of is None or of in {"event", "recipient"}:
            return _MAPS[of].get(name) if of is not None else None  # first level: _cel
        if isinstance(of, ListOf):
            self.problems[_field_problem(of, name)] = None
            return None
        if of in _MAPS:
            if name not in _MAPS[of]:
                self.problems[_field_problem(of, name)] = None
            return _MAPS[of].get(name)
        self.problems[_field_problem(of, name)] = None
        return None

    def kind(self, node: Node, scope: dict[str, Kind]) -> Kind:  # noqa: PLR0911  # one return per form
        """What ``node`` is, with ``scope`` the macro variables bound around it."""
        if isinstance(node, Lit):
            return node.kind
        if isinstance(node, Ident):
            if node.name in scope:
                return scope[node.name]
            return node.name if node.name in {"event", "recipient"} else None
        if isinstance(node, Select):
            return self.field(self.kind(node.operand, scope), node.field)
        if isinstance(node, Index):
            return self.index(node, scope)
        if isinstance(node, ListLit):
            items = {self.kind(item, scope) for item in node.items}
            if not items:
                return ListOf(None)  # empty: a list all the same, of nothing known
            # Items of one known kind; of unknown ones it is not the empty list's ListOf(None),
            # which either() takes for whatever the other branch is.
            return ListOf(items.pop()) if len(items) == 1 and None not in items else None
        if isinstance(node, MapLit):
            for key, value in node.entries:
                self.kind(key, scope)
                self.kind(value, scope)
            return None
        if isinstance(node, Op):
            return self.operation(node, scope)
        return self.call(node, scope)

    def operation(self, node: Op, scope: dict[str, Kind]) -> Kind:
        result, problem = operation(node, [self.kind(arg, scope) for arg in node.args])
        if problem is not None:
            self.problems[problem] = None
        if self.vocabulary and node.op in {"==", "!=", "in"}:
            fields = [self.field_name(arg, scope) for arg in node.args]
            for found in vocabulary_problems(node, fields, self.vocabulary):
                self.values[found] = None
        return result

    def index(self, node: Index, scope: dict[str, Kind]) -> Kind:
        of = self.kind(node.operand, scope)
        key = node.index
        self.kind(key, scope)
        if isinstance(of, ListOf):
            return of.item
        if of in {"subject", "safeguarding"} and isinstance(key, Lit) and key.value is not None:
            return self.field(of, key.value)  # s['age'] reads as s.age does
        return None

    def call(self, node: Call, scope: dict[str, Kind]) -> Kind:
        target = self.kind(node.target, scope) if node.target is not None else None
        var = node.args[0] if node.args else None
        if node.fn in _MACROS and node.target is not None and isinstance(var, Ident):
            if len(node.args) not in (2, 3) or (len(node.args) == 3 and node.fn != "map"):
                return None
            item = target.item if isinstance(target, ListOf) else None
            inner = {**scope, var.name: item}  # rebinding hides the outer variable
            results = [self.kind(arg, inner) for arg in node.args[1:]]
            if node.fn == "filter":
                return target
            if node.fn == "map":
                return ListOf(results[-1]) if results[-1] is not None else None
            return "bool"
        for arg in node.args:
            self.kind(arg, scope)
        # Only functions CEL has: _cel names any other once, as unknown.
        if node.fn in _RESULTS and (problem := call_problem(node, target)):
            self.problems[problem] = None
        return _RESULTS.get(node.fn)


def kind_problems(source: str) -> list[str]:
    """Problems with what ``source`` does to values whose kind is known (fields selected,
    operations, calls of literals), each once; none for a condition outside the grammar
    ``_cel_parse`` follows."""
    tree = parse(source)
    if tree is None:
        return []
    walk = _Walk()
    try:
        walk.kind(tree, {})
    except RecursionError:
        return []
    return list(walk.problems)


def value_problems(source: str, vocabulary: Vocabulary) -> list[str]:
    """Strings ``source`` compares with a field that never holds them (``vocabulary``: the
    bundle's parties, the kinds, event types and roles), each once."""
    tree = parse(source)
    if tree is None:
        return []
    walk = _Walk(vocabulary)
    try:
        walk.kind(tree, {})
    except RecursionError:
        return []
    return list(walk.values)
