"""A syntax tree of a CEL condition, for the load-time checks that must follow its variables.

The CEL binding compiles a condition but shows nothing of its structure, and the checks on
the source text (``_cel_selects``) can follow a macro's variable only where the text spells
it out (``event.subjects.exists(s, ..)``). This is CEL's grammar (cel-spec, langdef.md),
enough to say what each part of a condition is: ``parse`` returns the tree, or None for
anything outside it (message construction, optional selects). None means "not followed",
never "wrong": the binding has already compiled the source, and what it accepts and this
does not is left to the other checks and the load-time probe.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from broker.policy._cel_reads import LEXEMES

__all__ = ["Call", "Ident", "Index", "ListLit", "Lit", "MapLit", "Node", "Op", "Select", "parse"]


@dataclass(frozen=True, slots=True)
class Lit:
    """A literal: ``kind`` is string, bytes, int, uint, double, bool or null; a string's
    ``value`` is its text when it has no escapes (else None); ``text`` is as written, for
    messages and to evaluate a call of literals once at load."""

    kind: str
    value: str | None = None
    text: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class Ident:
    name: str


@dataclass(frozen=True, slots=True)
class Select:
    """``operand.field``; inside ``has()`` as well."""

    operand: Node
    field: str


@dataclass(frozen=True, slots=True)
class Call:
    """``fn(args)``, or ``target.fn(args)`` (macros included: ``args[0]`` is the variable)."""

    target: Node | None
    fn: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Index:
    operand: Node
    index: Node


@dataclass(frozen=True, slots=True)
class ListLit:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class MapLit:
    entries: tuple[tuple[Node, Node], ...]


@dataclass(frozen=True, slots=True)
class Op:
    """An operator: ``!``, unary ``-``, the binary ones, and ``?:`` (three arguments)."""

    op: str
    args: tuple[Node, ...]


Node = Lit | Ident | Select | Call | Index | ListLit | MapLit | Op


class _Unparsed(Exception):
    """Outside the grammar this follows: the caller treats the condition as not followed."""


_NUMBER: Final = re.compile(r"0[xX][0-9a-fA-F]+[uU]?|(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?[uU]?")
_IDENT: Final = re.compile(r"[A-Za-z_]\w*")
_PUNCT: Final = re.compile(r"&&|\|\||==|!=|<=|>=|[-+*/%!<>?:.,()\[\]{}]")
_RELATIONS: Final = frozenset({"<", "<=", ">", ">=", "==", "!=", "in"})
_KEYWORDS: Final = {"true": "bool", "false": "bool", "null": "null"}

Token = tuple[str, str, Lit | None]  # (kind, text, literal); kind: ident, lit, punct, end


def _tokens(source: str) -> list[Token]:
    out: list[Token] = []
    at = 0
    while at < len(source):
        if source[at].isspace():
            at += 1
            continue
        if lexeme := LEXEMES.match(source, at):
            text = lexeme.group()
            at = lexeme.end()
            if not text.startswith("//"):
                out.append(("lit", text, _string(text)))
            continue
        if number := _NUMBER.match(source, at):
            text = number.group()
            kind = "uint" if text[-1] in "uU" else "int"
            if not text.startswith(("0x", "0X")) and any(c in text for c in ".eE"):
                kind = "double"
            out.append(("lit", text, Lit(kind, None, text)))
            at = number.end()
            continue
        if ident := _IDENT.match(source, at):
            text = ident.group()
            if text in _KEYWORDS:
                out.append(("lit", text, Lit(_KEYWORDS[text], None, text)))
            else:
                out.append(("ident", text, None))
            at = ident.end()
            continue
        if punct := _PUNCT.match(source, at):
            out.append(("punct", punct.group(), None))
            at = punct.end()
            continue
        raise _Unparsed(source[at])
    out.append(("end", "", None))
    return out


def _string(text: str) -> Lit:
    """A string or bytes literal; its value only when plain (no prefix but ``r``, no escape)."""
    prefix = re.match(r"[bBrR]*", text)
    head = prefix.group() if prefix else ""
    body = text[len(head) :]
    if "b" in head.lower():
        return Lit("bytes", None, text)
    quote = body[:3] if body[:3] in {"'''", '"""'} else body[:1]
    inner = body[len(quote) : len(body) - len(quote)]
    if "\\" in inner and "r" not in head.lower():
        return Lit("string", None, text)
    return Lit("string", inner, text)


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.at = 0

    def peek(self, text: str | None = None) -> bool:
        kind, value, _ = self.tokens[self.at]
        return kind == "punct" and value == text if text is not None else kind == "end"

    def take(self, text: str) -> None:
        if not self.peek(text):
            raise _Unparsed(text)
        self.at += 1

    def ident(self) -> str:
        kind, value, _ = self.tokens[self.at]
        if kind != "ident":
            raise _Unparsed(value)
        self.at += 1
        return value

    def expr(self) -> Node:
        cond = self.binary(0)
        if self.peek("?"):
            self.at += 1
            then = self.binary(0)
            self.take(":")
            return Op("?:", (cond, then, self.expr()))
        return cond

    # Binary operators by precedence, loosest first; each level is left-associative.
    _LEVELS: Final = (("||",), ("&&",), tuple(_RELATIONS), ("+", "-"), ("*", "/", "%"))

    def binary(self, level: int) -> Node:
        if level == len(self._LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while True:
            kind, value, _ = self.tokens[self.at]
            if kind not in {"punct", "ident"} or value not in self._LEVELS[level]:
                return left
            self.at += 1
            left = Op(value, (left, self.binary(level + 1)))

    def unary(self) -> Node:
        if self.peek("!") or self.peek("-"):
            op = self.tokens[self.at][1]
            self.at += 1
            return Op(op, (self.unary(),))
        return self.member()

    def member(self) -> Node:
        node = self.primary()
        while True:
            if self.peek("."):
                self.at += 1
                name = self.ident()
                node = Call(node, name, self.args(")")) if self.peek("(") else Select(node, name)
            elif self.peek("["):
                self.at += 1
                index = self.expr()
                self.take("]")
                node = Index(node, index)
            elif self.peek("{"):
                raise _Unparsed("{")  # a message constructed: no such message here
            else:
                return node

    def args(self, close: str) -> tuple[Node, ...]:
        """Comma-separated expressions after an opening bracket, up to ``close``."""
        self.at += 1
        items: list[Node] = []
        while not self.peek(close):
            items.append(self.expr())
            if not self.peek(","):
                break
            self.at += 1
        self.take(close)
        return tuple(items)

    def primary(self) -> Node:
        kind, value, lit = self.tokens[self.at]
        if kind == "lit" and lit is not None:
            self.at += 1
            return lit
        if self.peek("."):  # a name from the root scope: .event
            self.at += 1
        if self.tokens[self.at][0] == "ident":
            name = self.ident()
            if self.peek("("):
                return Call(None, name, self.args(")"))
            return Ident(name)
        if self.peek("("):
            self.at += 1
            inner = self.expr()
            self.take(")")
            return inner
        if self.peek("["):
            return ListLit(self.args("]"))
        if self.peek("{"):
            self.at += 1
            entries: list[tuple[Node, Node]] = []
            while not self.peek("}"):
                key = self.expr()
                self.take(":")
                entries.append((key, self.expr()))
                if not self.peek(","):
                    break
                self.at += 1
            self.take("}")
            return MapLit(tuple(entries))
        raise _Unparsed(value)


def parse(source: str) -> Node | None:
    """The tree of ``source``, or None when it is outside the grammar followed here."""
    try:
        parser = _Parser(_tokens(source))
        node = parser.expr()
    except (_Unparsed, RecursionError):
        return None
    return node if parser.peek() else None  # all of it, or it was not understood
