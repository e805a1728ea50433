"""What CEL's operators and calls make of their operands' kinds: mistakes that hold for every event.

CEL converts nothing. Values of different types are never equal, so
``recipient.urn == 146201`` (a string against a number) is quietly false for every event,
and ``!=`` true; ordering or arithmetic across types (``event.need_level >= '2'``,
``event.occurred_at > '2026-01-01'``) fails for every event, which a clause takes as "does
not apply" and a restriction as "applies". Where ``_cel_types`` knows the kinds of both
operands, each such operation is a load error here. So is a call whose arguments are all
literals that fails whatever the event (``timestamp('2026-13-01T00:00:00Z')``,
``duration('7d')``, ``x.matches('[')``): it is made once, at load, by the binding itself.

Numbers (int, uint, double) compare with each other, and ``null`` may be compared with
anything for equality (an optional field may be null). The tables follow the binding
(``cel``, common-expression-language 0.10) where it differs from the CEL specification
(``duration + timestamp`` and ``-duration`` fail); tests/unit/policy/test_cel_types.py holds
them to it. A kind not known (``dyn(..)``, a map written in the condition) is never a problem.

Some strings are one of a fixed list: a party's id, a kind, an event type, a person's role.
A literal outside its list (``recipient.id == 'cog-tiptn'``, ``s.role == 'Child'``) is of
the right kind and still false for every event, and a restriction written so never
withholds anything: ``vocabulary_problems`` names it, with the bundle's lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, NamedTuple

import cel

from broker._words import closest
from broker.policy._cel_parse import Call, Ident, Index, ListLit, Lit, MapLit, Node, Op, Select

__all__ = [
    "Kind",
    "ListOf",
    "Vocabulary",
    "Words",
    "call_problem",
    "either",
    "named",
    "operation",
    "text",
    "vocabulary_problems",
    "written",
]


class ListOf(NamedTuple):
    item: Kind


# A map the condition is given ("event", "recipient", "subject", "safeguarding"), a scalar
# ("string", "int", "uint", "double", "bool", "bytes", "null", "timestamp", "duration"), a
# list of a known kind, or None: not known, not followed.
Kind = str | ListOf | None

_NAMED: Final = {
    "string": "a string", "int": "an integer", "uint": "an unsigned integer",
    "double": "a decimal number", "bool": "a boolean", "bytes": "bytes", "null": "null",
    "timestamp": "a timestamp", "duration": "a duration", "event": "the event",
    "recipient": "the recipient", "subject": "a subject", "safeguarding": "safeguarding",
}  # fmt: skip
_PLURAL: Final = {
    "string": "strings", "int": "integers", "uint": "unsigned integers",
    "double": "decimal numbers", "bool": "booleans", "timestamp": "timestamps",
    "duration": "durations", "subject": "subjects",
}  # fmt: skip
_NUMBERS: Final = frozenset({"int", "uint", "double"})
_MAPS: Final = frozenset({"event", "recipient", "subject", "safeguarding"})
_ORDERED: Final = frozenset({"string", "bytes", "bool", "timestamp", "duration"})
_ARITHMETIC: Final[dict[str, dict[tuple[str, str], str]]] = {
    "+": {
        **{(n, n): n for n in _NUMBERS}, ("string", "string"): "string",
        ("bytes", "bytes"): "bytes", ("timestamp", "duration"): "timestamp",
        ("duration", "duration"): "duration",
    },
    "-": {
        **{(n, n): n for n in _NUMBERS}, ("timestamp", "timestamp"): "duration",
        ("timestamp", "duration"): "timestamp", ("duration", "duration"): "duration",
    },
    "*": {(n, n): n for n in _NUMBERS},
    "/": {(n, n): n for n in _NUMBERS},
    "%": {("int", "int"): "int", ("uint", "uint"): "uint"},
}  # fmt: skip
_NEGATABLE: Final = frozenset({"int", "double", "bool"})  # the binding takes -true for !true
_ORDER: Final = frozenset({"<", "<=", ">", ">="})
_MACROS: Final = frozenset({"all", "exists", "exists_one", "map", "filter", "has"})
# A receiver of each kind for a method called on literals: no method here fails on one
# value of a kind and not another when its arguments are the same.
_SAMPLE: Final = {
    "string": "''", "int": "0", "uint": "0u", "double": "0.0", "bool": "false",
    "bytes": "b''", "timestamp": "timestamp('2026-01-01T00:00:00Z')",
    "duration": "duration('0s')",
}  # fmt: skip
_LONG: Final = 80


def named(kind: Kind) -> str:
    """``kind`` in words: "an integer", "a list of strings"."""
    if isinstance(kind, ListOf):
        item = _PLURAL.get(kind.item) if isinstance(kind.item, str) else None
        return f"a list of {item}" if item else "a list"
    return _NAMED.get(kind or "", "a value")


def either(one: Kind, other: Kind) -> Kind:
    """What a value that is one or the other is: ``c ? event.subjects : []`` is subjects."""
    if one == other:
        return one
    if one == ListOf(None) and isinstance(other, ListOf):
        return other
    if other == ListOf(None) and isinstance(one, ListOf):
        return one
    return None


def _family(kind: Kind) -> str | None:
    if isinstance(kind, ListOf):
        return "list"
    if kind in _NUMBERS:
        return "number"
    return "map" if kind in _MAPS else kind


def _may_equal(one: Kind, other: Kind) -> bool:
    """Whether a value of ``one`` can equal one of ``other``, as far as is known."""
    if one is None or other is None or "null" in {one, other}:
        return True
    if isinstance(one, ListOf) and isinstance(other, ListOf):
        return _may_equal(one.item, other.item)
    return _family(one) == _family(other)


def _ordered(one: Kind, other: Kind) -> bool:
    if one is None or other is None:
        return True
    return (one in _NUMBERS and other in _NUMBERS) or (one == other and one in _ORDERED)


def text(node: Node) -> str:
    """``node`` as CEL, shortened for a one-line message."""
    out = _text(node)
    return out if len(out) <= _LONG else out[: _LONG - 1] + "…"


def written(node: Node) -> str:
    """``node`` as CEL, in full: a part of a condition to compile on its own."""
    return _text(node)


def _text(node: Node) -> str:  # noqa: PLR0911  # one return per form
    if isinstance(node, Lit):
        return node.text
    if isinstance(node, Ident):
        return node.name
    if isinstance(node, Select):
        return f"{_operand(node.operand)}.{node.field}"
    if isinstance(node, Index):
        return f"{_operand(node.operand)}[{_text(node.index)}]"
    if isinstance(node, Call):
        head = f"{_operand(node.target)}." if node.target is not None else ""
        return f"{head}{node.fn}({', '.join(_text(a) for a in node.args)})"
    if isinstance(node, ListLit):
        return f"[{', '.join(_text(i) for i in node.items)}]"
    if isinstance(node, MapLit):
        return "{" + ", ".join(f"{_text(k)}: {_text(v)}" for k, v in node.entries) + "}"
    if node.op == "?:":
        return " ? ".join(_operand(a) for a in node.args[:2]) + f" : {_operand(node.args[2])}"
    if len(node.args) == 1:
        return f"{node.op}{_operand(node.args[0])}"
    return f"{_operand(node.args[0])} {node.op} {_operand(node.args[1])}"


def _operand(node: Node) -> str:
    return f"({_text(node)})" if isinstance(node, Op) else _text(node)


def _hint(kind: Kind, other: Node) -> str:  # noqa: PLR0911  # one return per kind
    """How to write ``other``, a literal, as a value of ``kind``; "" when not obvious."""
    if not isinstance(other, Lit):
        return ""
    value = other.value
    if kind == "string" and other.kind in _NUMBERS | {"bool"}:
        return f"; for the text, write '{other.text}'"
    if other.kind != "string" or value is None:
        return ""
    if kind in _NUMBERS and value.strip().lstrip("-").replace(".", "", 1).isdigit():
        return f"; for the number, write {value.strip()}"
    if kind == "bool" and value.strip().lower() in {"true", "false"}:
        return f"; for the boolean, write {value.strip().lower()}"
    if kind == "timestamp":
        return "; for a time, write timestamp('2026-01-01T00:00:00Z')"
    if kind == "duration":
        return "; for a length of time, write duration('24h')"
    return ""


def _relation(node: Op, left: Kind, right: Kind) -> str | None:  # noqa: PLR0911  # one per case
    a, b = node.args
    hint = _hint(left, b) or _hint(right, a)
    shown = text(node)
    if node.op in {"==", "!="} and not _may_equal(left, right):
        result = "false" if node.op == "==" else "true"
        return (
            f"CEL: {shown} compares {named(left)} with {named(right)}, which are never equal,"
            f" so it is {result} for every event{hint}"
        )
    if node.op in _ORDER and not _ordered(left, right):
        return (
            f"CEL: {shown} orders {named(left)} against {named(right)}, which fails for every"
            f" event{hint}"
        )
    if node.op != "in" or right is None:
        return None
    if isinstance(right, ListOf):
        if _may_equal(left, right.item):
            return None
        hint = _hint(right.item, a)
        return (
            f"CEL: {shown} looks for {named(left)} in {named(right)}, which never holds one,"
            f" so it is false for every event{hint}"
        )
    if _family(right) == "map":
        if _may_equal(left, "string"):
            return None
        return (
            f"CEL: {shown} looks for {named(left)} among {named(right)}'s field names, so it"
            " is false for every event"
        )
    if right == "null":
        return None
    hint = f"; for text within text, write {_operand(b)}.contains({_text(a)})"
    return (
        f"CEL: {shown} looks in {named(right)}, which is not a list, so it fails for every"
        f" event{hint if right == 'string' else ''}"
    )


class Words(NamedTuple):
    """What a field's values are: ``noun`` ("party kind"), in a message ``"recipient.kind
    is a party kind, and there is no party kind 'hubs'"``; ``known`` lists them, and
    ``listed`` says a message may list them all (a few; a bundle's parties are too many),
    ``among`` where they are (" in the bundle")."""

    noun: str
    known: frozenset[str]
    listed: bool = True
    among: str = ""


# A field as "recipient.id", "subject.role" (the kind it is selected from, then the field)
# → the values it can hold.
Vocabulary = Mapping[str, Words]


def _article(noun: str) -> str:
    return "an" if noun[:1] in "aeiou" else "a"


def _unknown_value(value: str, words: Words) -> str:
    close = closest(value, sorted(words.known))
    if close:
        hint = f"; did you mean {close!r}?"
    elif words.listed:
        hint = f" (known: {', '.join(sorted(words.known))})"
    else:
        hint = ""
    return f"there is no {words.noun} {value!r}{words.among}{hint}"


def vocabulary_problems(node: Op, fields: list[str | None], vocabulary: Vocabulary) -> list[str]:
    """Strings ``node`` compares with a field of a fixed list that are not in the list:
    ``recipient.id == 'cog-tiptn'`` (either side), ``!=``, and ``x in [..]`` item by item.
    ``fields``: what each operand is ("recipient.id"), or None."""
    op, args = node.op, node.args
    if op in {"==", "!="}:
        pairs = [(fields[0], args[0], args[1]), (fields[1], args[1], args[0])]
    elif op == "in" and isinstance(args[1], ListLit):
        pairs = [(fields[0], args[0], item) for item in args[1].items]
    else:
        return []
    out = []
    for field, operand, other in pairs:
        words = vocabulary.get(field) if field is not None else None
        if words is None or not isinstance(other, Lit) or other.kind != "string":
            continue
        value = other.value
        if value is None or value in words.known:
            continue  # None: a string with escapes, not read here
        said = (
            f"{text(operand)} is {_article(words.noun)} {words.noun}, and"
            f" {_unknown_value(value, words)}"
        )
        if op == "in":
            out.append(f"CEL: {text(node)} never matches {other.text}: {said}")
        else:
            result = "false" if op == "==" else "true"
            out.append(f"CEL: {text(node)} is {result} for every event: {said}")
    return out


def operation(node: Op, kinds: list[Kind]) -> tuple[Kind, str | None]:  # noqa: PLR0911  # one per form
    """What ``node`` gives, with its operands of ``kinds``, and what is wrong with it."""
    op = node.op
    if op in {"!", "&&", "||", "?:"}:
        tested = kinds if op != "?:" else kinds[:1]
        for arg, kind in zip(node.args, tested, strict=False):
            if kind not in {None, "bool"}:
                problem = f"CEL: {text(arg)} is {named(kind)}, not true or false, in {text(node)}"
                return (None if op == "?:" else "bool"), problem
        return (either(kinds[1], kinds[2]) if op == "?:" else "bool"), None
    if op in _ORDER | {"==", "!=", "in"}:
        return "bool", _relation(node, *kinds)
    if len(kinds) == 1:  # unary minus
        (kind,) = kinds
        if kind is None or kind in _NEGATABLE:
            return kind, None
        return None, f"CEL: {text(node)} negates {named(kind)}, which fails for every event"
    left, right = kinds
    if left is None or right is None:
        return None, None
    if op == "+" and isinstance(left, ListOf) and isinstance(right, ListOf):
        return either(left, right), None
    table = _ARITHMETIC.get(op, {})
    result = table.get((left, right)) if isinstance(left, str) and isinstance(right, str) else None
    if result is not None:
        return result, None
    return None, (
        f"CEL: {text(node)} applies {op} to {named(left)} and {named(right)}, which fails for"
        " every event"
    )


def call_problem(node: Call, target: Kind) -> str | None:
    """What is wrong with a call of literals (``timestamp('..')``, ``x.matches('..')``),
    found by making it once; None when it works or its arguments are not all literals."""
    if node.fn in _MACROS or not all(isinstance(a, Lit) for a in node.args):
        return None
    if node.target is None:
        if not node.args:
            return None  # the binding names the function: _cel's probe reports it
        receiver = ""
    elif isinstance(node.target, Lit):
        receiver = node.target.text + "."
    elif isinstance(target, str) and target in _SAMPLE:
        receiver = _SAMPLE[target] + "."
    elif node.fn == "matches":  # defined on strings only
        receiver = "''."
    else:
        return None
    args = ", ".join(a.text for a in node.args if isinstance(a, Lit))
    try:
        cel.compile(f"{receiver}{node.fn}({args})").execute({})
    except Exception:  # noqa: BLE001  # whatever the binding raises, the call fails for every event
        return _failed(node)
    return None


def _failed(node: Call) -> str:
    shown = text(node)
    if node.fn == "timestamp":
        return (
            f"CEL: {shown} is not a valid timestamp, so it fails for every event"
            " (write one as timestamp('2026-01-01T00:00:00Z'))"
        )
    if node.fn == "duration":
        return (
            f"CEL: {shown} is not a valid duration, so it fails for every event"
            " (write one as duration('24h'); the units are h, m, s and ms)"
        )
    if node.fn == "matches":
        return f"CEL: {shown} has an invalid regular expression, so it fails for every event"
    return f"CEL: {shown} fails for every event (no such call, or an invalid argument)"
