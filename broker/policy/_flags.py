"""Flag rules (``flags.yaml``): the co-ordinating team's rules over a child's window of records.

A rule's ``when`` is CEL over the aggregates of the child's records in the rule's window
(``FLAG_VARIABLES``) and, in a household rule, ``household``: the same aggregates over the
records of every child sharing the child's address, and ``household.children``
(``HOUSEHOLD_AGGREGATES``). It is compiled once at load, must name no other variable, field of
``household`` or unknown function, and must give true or false. The window is ``Nd`` (days)
or ``Nh`` (hours).
Evaluation lives in the desk (``broker.desk``); this module only checks and compiles.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Final

import cel
from pydantic import BaseModel, ConfigDict, StringConstraints

from broker.policy._cel import _BOUND, _FUNCTIONS
from broker.policy._cel_reads import blank_strings

__all__ = [
    "FLAG_VARIABLES",
    "HOUSEHOLD_AGGREGATES",
    "CompiledFlagRule",
    "FlagRule",
    "compile_flag_rule",
    "parse_window",
]

#: name → the Python type of its value (lists hold distinct strings).
FLAG_VARIABLES: Final[Mapping[str, type]] = {
    "contacts": int,
    "distinct_agencies": int,
    "max_need": int,
    "categories": list,
    "types": list,
    "senders": list,
    "household": dict,
}
#: The fields of ``household``: the child's aggregates, over the household's records, and
#: how many distinct children those records are about.
HOUSEHOLD_AGGREGATES: Final[Mapping[str, type]] = {
    **{name: kind for name, kind in FLAG_VARIABLES.items() if name != "household"},
    "children": int,
}
_HOUSEHOLD_FIELD: Final = re.compile(r"\bhousehold\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)")
_WINDOW: Final = re.compile(r"^([1-9][0-9]{0,4})([dh])$")
# A window longer than this is a typo, not a rule (and would keep years of state per child).
_MAX_WINDOW: Final = timedelta(days=3660)
_BUSY: Final[dict[str, Any]] = {
    "contacts": 3,
    "distinct_agencies": 2,
    "max_need": 4,
    "categories": ["domestic_abuse", "probe"],
    "types": ["police.domestic_incident"],
    "senders": ["probe-a", "probe-b"],
}
_QUIET: Final[dict[str, Any]] = {k: 0 if isinstance(v, int) else [] for k, v in _BUSY.items()}
# Well-typed aggregates a condition is tried on at load: a busy window and an empty one.
_PROBES: Final[tuple[dict[str, Any], ...]] = (
    {**_BUSY, "household": {**_BUSY, "contacts": 5, "children": 2}},
    {**_QUIET, "household": {**_QUIET, "children": 0}},
)


class FlagRule(BaseModel):
    """One rule of ``flags.yaml``: ``id``, ``title``, ``window`` (``Nd``/``Nh``), ``when``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    title: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    window: str
    when: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    description: Annotated[str, StringConstraints(max_length=4000)] | None = None


def parse_window(text: str) -> timedelta | None:
    """``90d`` → 90 days, ``12h`` → 12 hours; None for anything else."""
    m = _WINDOW.match(text)
    if m is None:
        return None
    n = int(m.group(1))
    window = timedelta(days=n) if m.group(2) == "d" else timedelta(hours=n)
    return window if window <= _MAX_WINDOW else None


@dataclass(frozen=True)
class CompiledFlagRule:
    """A checked rule with its compiled condition: ``holds(aggregates)`` is pure."""

    rule: FlagRule
    window: timedelta
    program: Any
    # Whether ``when`` names ``household``: the rule is then evaluated with the household.
    household: bool = False

    @property
    def id(self) -> str:
        return self.rule.id

    def holds(self, aggregates: Mapping[str, Any]) -> bool:
        """Whether ``when`` holds; a runtime failure counts as not holding (no flag)."""
        try:
            value = self.program.execute(dict(aggregates))
        except Exception:  # noqa: BLE001  # any CEL runtime failure: the rule does not fire
            return False
        return value is True


def compile_flag_rule(rule: FlagRule) -> tuple[CompiledFlagRule | None, list[tuple[str, str]]]:
    """Compile ``rule``; problems come as (field, message) so the loader can locate them."""
    problems: list[tuple[str, str]] = []
    window = parse_window(rule.window)
    if window is None:
        problems.append(("window", f"window {rule.window!r} must be Nd or Nh (e.g. 90d, 12h)"))
    try:
        program = cel.compile(rule.when)
    except Exception as exc:  # noqa: BLE001  # the binding raises ValueError, or others for odd input
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        problems.append(("when", f"CEL does not compile: {first.split(': ERROR: ', 1)[-1]}"))
        return None, problems
    known = ", ".join(FLAG_VARIABLES)
    # As for agreements' conditions: a macro's own variable (the c of categories.exists(c,
    # ...)) is no free name, and a string's text is no code.
    bare = blank_strings(rule.when)
    bound = set(_BOUND.findall(bare))
    problems.extend(
        ("when", f"CEL refers to unknown name {name!r} (known: {known})")
        for name in program.variables()
        if name not in FLAG_VARIABLES and name not in bound
    )
    problems.extend(
        ("when", f"CEL calls unknown function {fn!r}")
        for fn in program.functions()
        if fn[:1] not in {"_", "@", "!"} and fn not in _FUNCTIONS
    )
    problems.extend(
        ("when", f"household has no aggregate {name!r} (it has: {', '.join(HOUSEHOLD_AGGREGATES)})")
        for name in dict.fromkeys(_HOUSEHOLD_FIELD.findall(bare))
        if name not in HOUSEHOLD_AGGREGATES
    )
    if not problems:
        for probe in _PROBES:
            try:
                value = program.execute(dict(probe))
            except Exception:  # noqa: BLE001  # a type error on well-typed aggregates is the rule's fault
                problems.append(("when", "CEL fails on well-formed aggregates (a type error?)"))
                break
            if not isinstance(value, bool):
                problems.append(("when", "CEL condition does not evaluate to true or false"))
                break
    if problems or window is None:
        return None, problems
    household = "household" in program.variables()
    return CompiledFlagRule(rule, window, program, household), []
