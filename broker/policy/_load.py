"""Reading a bundle folder: ``parties.yaml``, ``agreements/*.yaml``, optional
``restrictions.yaml``, ``consent-authorities.yaml`` and ``flags.yaml``.

Every file is read and checked before anything is reported, so a user fixing a bundle sees
all of its problems at once (``BundleInvalid.problems``), each as ``file:line: path: what``.
``scenarios/``, notes and hidden files are not policy and are ignored here; a file or folder
that looks like policy under a name the loader does not read is a problem (``_layout``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from broker.errors import BundleInvalid
from broker.policy._check import Conditions, Source, check_bundle, check_flags, check_loose
from broker.policy._flags import CompiledFlagRule, FlagRule
from broker.policy._layout import agreement_files, layout_problems
from broker.policy._loose import LooseClause, loose_clauses
from broker.policy._model import Agreement, Bundle, ConsentAuthority, Party, Restriction
from broker.policy._wording import (
    NUMBER_OR_TEXT,
    UNION_WORDS,
    key_not_text,
    plain_message,
    text_key,
)
from broker.policy._yaml import Located, YamlProblem, fmt_path, read_yaml

__all__ = ["STOPPED", "read_bundle"]

#: Said of a file that could not be read, or not as YAML: its other problems are not listed.
STOPPED: Final = "fix this first: the file was not checked further"
# pydantic's names for the branches of ``version: int | str`` in an error's place, and the
# errors they give (only under ``version``: a transform keyed "str" is no branch).
_BRANCHES: Final = frozenset({"int", "str", "constrained-str"})
_BRANCH_ERRORS: Final = frozenset({"int_type", "int_parsing", "string_type"})
# A party's id, which the loader takes from its mapping key.
_ID: Final = frozenset({"id"})
# "file:line: ..." or "file: ...", as every problem starts.
_PLACE: Final = re.compile(r"(?P<file>[^:]+?)(?::(?P<line>\d+))?: ")


def _in_order(problems: list[str], first: frozenset[str] = frozenset()) -> list[str]:
    """A file that could not be read first, as the one to fix first (the first problem is
    the one a one-line summary names), and so ``first``; then by file, then line: one
    file's problems together and read down it, as it is fixed. Problems of one place keep
    the order they were found in (the sort is stable)."""

    def place(problem: str) -> tuple[bool, str, int]:
        stopped = problem.endswith(STOPPED) or problem in first
        m = _PLACE.match(problem)
        if m is None:
            return not stopped, problem, 0
        return not stopped, m["file"], int(m["line"] or 0)

    return sorted(problems, key=place)


def _shape_problems(
    doc: Located,
    prefix: tuple[int | str, ...],
    exc: ValidationError,
    model: type[BaseModel],
    filled: frozenset[str],
) -> list[str]:
    out = []
    # With the input: a purpose's message suggests its spelling (a bundle holds no personal
    # data); plain_message quotes no other value.
    errors = exc.errors(include_url=False)
    failed = {err["loc"][:-1] for err in errors}
    branches: set[tuple[int | str, ...]] = set()
    deeper = {err["loc"][:at] for err in errors if (at := _branch_at(err)) < len(err["loc"]) - 1}
    for err in errors:
        if err["type"] == "too_short" and any(f[: len(err["loc"])] == err["loc"] for f in failed):
            # pydantic counts a list's items after dropping those that failed: a lone clause
            # with a fault would also report "clauses: at least 1 item", blaming the list.
            continue
        loc = (*prefix, *(p for p in err["loc"] if not (isinstance(p, str) and "[" in p)))
        message = plain_message(err, model, filled)
        if (at := _branch_at(err)) == len(err["loc"]) - 1:
            # A union's branch the value does not fit at all (withhold: 5 is neither 'all'
            # nor a list): said once for the field; and not at all when the value fitted
            # another branch but for an item (withhold: [5] is withhold[0]: must be text).
            if err["loc"][:at] in deeper or loc in branches:
                continue
            branches.add(loc)
            message = UNION_WORDS.get(str(loc[-1]), message)
        if key_not_text(err):
            # pydantic's place for the key is a guess (true is 1): the file's spelling.
            spelt = doc.key_spelt(loc[:-1], err.get("input"))
            loc = (*loc[:-1], spelt) if spelt is not None else loc[:-1]
            message = text_key(spelt)
        if err["type"] in _BRANCH_ERRORS and loc[-2:-1] == ("version",) and loc[-1] in _BRANCHES:
            # One failure per branch of ``int | str``: one problem, at the field's own place.
            loc = loc[:-1]
            if loc in branches:
                continue
            branches.add(loc)
            message = NUMBER_OR_TEXT
        out.append(f"{doc.where(loc)}: {message}")
    return out


def _branch_at(err: ErrorDetails) -> int:
    """Where in ``err``'s place pydantic names the branch of a union it tried (``tuple[str,
    ...]``, ``literal['all']``), or past its end when it names none."""
    loc = err["loc"]
    tags = (i for i, p in enumerate(loc) if isinstance(p, str) and "[" in p and p != "[key]")
    return next(tags, len(loc))


def _model(
    model: type[BaseModel],
    data: Any,
    doc: Located,
    prefix: tuple[int | str, ...],
    problems: list[str],
    *,
    filled: frozenset[str] = frozenset(),
) -> Any:
    """``data`` as ``model``; ``filled``: its keys this loader set, not the file."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems.extend(_shape_problems(doc, prefix, exc, model, filled))
        return None


def _read(path: Path, root: Path, problems: list[str]) -> Located | None:
    try:
        doc = read_yaml(path, path.relative_to(root).as_posix())
    except YamlProblem as exc:
        # Nothing after it was read: whatever else is wrong in the file is not listed yet.
        problems.append(f"{exc}; {STOPPED}")
        return None
    except (OSError, UnicodeDecodeError) as exc:
        name = path.relative_to(root).as_posix()
        problems.append(f"{name}: cannot be read ({type(exc).__name__}); {STOPPED}")
        return None
    problems.extend(f"{doc.where(loc)}: duplicate key" for loc in doc.duplicates)
    return doc


def _named(root: Path, stem: str, problems: list[str]) -> Path:
    """``<stem>.yaml``, or ``<stem>.yml`` when only that exists (as agreements may be named):
    a bundle file under the other spelling must not be silently left out. Both is a problem."""
    yaml_path, yml_path = root / f"{stem}.yaml", root / f"{stem}.yml"
    if yml_path.is_file():
        if not yaml_path.is_file():
            return yml_path
        problems.append(f"{stem}.yaml and {stem}.yml: both exist; keep one")
    return yaml_path


def _parties(root: Path, problems: list[str]) -> tuple[dict[str, Party], Located | None]:
    """Parties by id; ``Located.data`` keeps the raw ids, including those that failed."""
    path = _named(root, "parties", problems)
    if not path.is_file():
        problems.append("parties.yaml: missing (a bundle needs its parties)")
        return {}, None
    doc = _read(path, root, problems)
    if doc is None:
        return {}, None
    data = doc.data
    if not isinstance(data, dict) or not isinstance(data.get("parties"), dict):
        problems.append(f"{doc.where(())}: expected a mapping 'parties:' of party id → party")
        return {}, doc
    for key in data:
        if key != "parties":
            problems.append(f"{doc.where((key,))}: unknown key")
    parties: dict[str, Party] = {}
    for pid, body in data["parties"].items():
        if not isinstance(body, dict):
            problems.append(f"{doc.where(('parties', pid))}: expected a mapping")
            continue
        if "id" in body:
            problems.append(
                f"{doc.where(('parties', pid, 'id'))}: unknown key (the id is the mapping key)"
            )
            continue
        party = _model(Party, {"id": str(pid), **body}, doc, ("parties", pid), problems, filled=_ID)
        if party is not None:
            parties[str(pid)] = party
    return parties, doc


def _agreements(
    root: Path, problems: list[str], loose: list[tuple[LooseClause, Located]]
) -> list[tuple[Agreement, Located]]:
    """The agreements that load; ``loose`` gets the checkable clauses of those that do not."""
    out: list[tuple[Agreement, Located]] = []
    for path in agreement_files(root):
        doc = _read(path, root, problems)
        if doc is None:
            continue
        if not isinstance(doc.data, dict):
            problems.append(f"{doc.where(())}: expected one agreement (a mapping)")
            continue
        agreement = _model(Agreement, doc.data, doc, (), problems)
        if agreement is not None:
            out.append((agreement, doc))
        else:
            source = ("loose", len(loose))
            loose.extend((clause, doc) for clause in loose_clauses(doc.data, source))
    return out


_M = TypeVar("_M", bound=BaseModel)


def _listed(
    root: Path, key: str, model: type[_M], what: str, problems: list[str]
) -> tuple[list[_M], Located | None]:
    """``<key>.yaml``'s ``key:`` list, each item a ``model``; no file is an empty list."""
    path = _named(root, key, problems)
    if not path.is_file():
        return [], None
    doc = _read(path, root, problems)
    if doc is None:
        return [], None
    data = doc.data
    if data is None:
        return [], doc
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        problems.append(f"{doc.where(())}: expected '{key}:' holding a list{what}")
        return [], doc
    problems.extend(f"{doc.where((other,))}: unknown key" for other in data if other != key)
    out: list[_M] = []
    for i, body in enumerate(data[key]):
        item = _model(model, body, doc, (key, i), problems)
        if item is not None:
            out.append(item)
    return out, doc


def _authorities(
    root: Path, problems: list[str]
) -> tuple[dict[str, ConsentAuthority] | None, Located | None]:
    path = _named(root, "consent-authorities", problems)
    if not path.is_file():
        return None, None
    doc = _read(path, root, problems)
    if doc is None:
        return {}, None
    data = doc.data
    if not isinstance(data, dict) or not isinstance(data.get("consent_authorities"), dict):
        problems.append(f"{doc.where(())}: expected 'consent_authorities:' of party id → rights")
        return {}, doc
    for key in data:
        if key != "consent_authorities":
            problems.append(f"{doc.where((key,))}: unknown key")
    out: dict[str, ConsentAuthority] = {}
    for pid, body in data["consent_authorities"].items():
        loc = ("consent_authorities", pid)
        item = _model(ConsentAuthority, body, doc, loc, problems)
        if item is not None:
            out[str(pid)] = item
    return out, doc


def read_bundle(root: Path) -> tuple[Bundle, Conditions, tuple[CompiledFlagRule, ...]]:
    """Load and check the bundle in ``root``; ``BundleInvalid`` lists every problem."""
    if not root.is_dir():
        raise BundleInvalid([f"{root}: not a policy bundle folder"])
    problems = layout_problems(root)
    before_parties = len(problems)
    parties, parties_doc = _parties(root, problems)
    parties_end = len(problems)
    loose: list[tuple[LooseClause, Located]] = []
    agreements = _agreements(root, problems, loose)
    restrictions, restrictions_doc = _listed(root, "restrictions", Restriction, "", problems)
    authorities, authorities_doc = _authorities(root, problems)
    flags, flags_doc = _listed(root, "flags", FlagRule, " of flag rules", problems)
    bundle = Bundle(
        parties=parties,
        agreements=tuple(a for a, _ in agreements),
        restrictions=tuple(restrictions),
        consent_authorities=authorities,
        flags=tuple(flags),
    )
    docs: dict[Source, Located | None] = {
        ("parties",): parties_doc,
        ("restrictions",): restrictions_doc,
        ("consent_authorities",): authorities_doc,
        ("flags",): flags_doc,
    }
    for i, (_, doc) in enumerate(agreements):
        docs[("agreement", i)] = doc
    for clause, doc in loose:
        docs[clause.source] = doc

    def where(source: Source, loc: tuple[int | str, ...]) -> str:
        doc = docs.get(source)
        if doc is None:
            return fmt_path(loc) or str(source[0])
        return doc.where(loc)

    raw_parties = (
        parties_doc.data.get("parties")
        if parties_doc and isinstance(parties_doc.data, dict)
        else None
    )
    # Without parties.yaml's mapping every party named elsewhere would be "unknown": noise
    # beside the problem that says why, so those checks wait until it is read.
    parties_read = isinstance(raw_parties, dict)
    known = frozenset(str(k) for k in raw_parties) if isinstance(raw_parties, dict) else frozenset()
    semantic, conditions = check_bundle(bundle, where, known, parties_read=parties_read)
    problems.extend(semantic)
    problems.extend(
        check_loose(bundle, where, (c for c, _ in loose), known, parties_read=parties_read)
    )
    flag_problems, flag_rules = check_flags(bundle, where)
    problems.extend(flag_problems)
    if problems:
        # parties.yaml missing or not a mapping silences every unknown-party check, as a file
        # that could not be read does: its problems are as much the ones to fix first.
        unread = frozenset() if parties_read else frozenset(problems[before_parties:parties_end])
        raise BundleInvalid(_in_order(problems, unread))
    return bundle, conditions, flag_rules
