"""Flag rules (``flags.yaml``): the co-ordinating team's rules over a child's window of records.

A rule's ``when`` is CEL over the aggregates of the child's records in the rule's window
(``FLAG_VARIABLES``) and, in a household rule, ``household``: the same aggregates over the
records of every child sharing the child's address, and ``household.children``
(``HOUSEHOLD_AGGREGATES``). It is compiled once at load, must name no other variable, field of
``household`` or unknown function, and must give true or false on every sample window it is
tried on at load (:mod:`._flag_probes`). The window is ``Nd`` (days) or ``Nh`` (hours), from
1h to 3660d.
Evaluation lives in the desk (``broker.desk``); this module checks, compiles and gives
``holds``, which reports a rule that still fails at runtime rather than hide it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any, Final

import cel
import structlog
from pydantic import BaseModel, ConfigDict, StringConstraints

from broker.policy._cel import _BOUND, _FUNCTIONS
from broker.policy._cel_reads import blank_strings
from broker.policy._flag_probes import probes

__all__ = [
    "FLAG_ID_PATTERN",
    "FLAG_VARIABLES",
    "HOUSEHOLD_AGGREGATES",
    "CompiledFlagRule",
    "FlagRule",
    "compile_flag_rule",
    "parse_window",
    "window_problem",
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
_WINDOW: Final = re.compile(r"^(0|[1-9][0-9]*)([dh])$")
# A window longer than this is a typo, not a rule (and would keep years of state per child).
_MAX_DAYS: Final = 3660
_MAX_WINDOW: Final = timedelta(days=_MAX_DAYS)
_FORM: Final = "must be Nd or Nh (e.g. 90d, 12h)"
#: A flag rule's id; ``_wording`` says it in words when one does not match.
FLAG_ID_PATTERN: Final = r"^[a-z0-9][a-z0-9_-]{0,63}$"
log = structlog.get_logger("accord.policy.flags")


class FlagRule(BaseModel):
    """One rule of ``flags.yaml``: ``id``, ``title``, ``window`` (``Nd``/``Nh``), ``when``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Annotated[str, StringConstraints(pattern=FLAG_ID_PATTERN)]
    title: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    window: str
    when: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    description: Annotated[str, StringConstraints(max_length=4000)] | None = None


def parse_window(text: str) -> timedelta | None:
    """``90d`` → 90 days, ``12h`` → 12 hours; None for anything else (``window_problem``
    says what)."""
    m = _WINDOW.match(text)
    if m is None or len(m.group(1)) > len(str(_MAX_DAYS * 24)):
        return None
    n = int(m.group(1))
    window = timedelta(days=n) if m.group(2) == "d" else timedelta(hours=n)
    return window if timedelta(0) < window <= _MAX_WINDOW else None


def window_problem(text: str) -> str | None:
    """What is wrong with ``text`` as a window, or None."""
    if parse_window(text) is not None:
        return None
    m = _WINDOW.match(text)
    if m is None:
        return f"window {text!r} {_FORM}"
    if m.group(1) == "0":
        return f"window {text!r} must be at least 1h"
    return f"window {text!r} must be at most {_MAX_DAYS}d ({_MAX_DAYS * 24}h)"


@dataclass(frozen=True)
class CompiledFlagRule:
    """A checked rule with its compiled condition: ``holds(aggregates)`` is pure."""

    rule: FlagRule
    window: timedelta
    program: Any
    # Whether ``when`` names ``household``: the rule is then evaluated with the household.
    household: bool = False
    #: Told ``(rule id, error type)`` when ``when`` fails at runtime (the flag service logs
    #: and counts it; a scenario reports it); None: logged here as ``flags_rule_failed``.
    failed: Callable[[str, str], None] | None = field(default=None, compare=False, repr=False)

    @property
    def id(self) -> str:
        return self.rule.id

    def holds(self, aggregates: Mapping[str, Any]) -> bool:
        """Whether ``when`` holds. A runtime failure does not hold (no flag), and is reported
        (``failed``): never silent, and only the rule and the error's type, not the inputs."""
        try:
            value = self.program.execute(dict(aggregates))
        except Exception as exc:  # noqa: BLE001  # any CEL runtime failure: reported, no flag
            self._failed(type(exc).__name__)
            return False
        if not isinstance(value, bool):
            self._failed("NotABoolean")
            return False
        return value

    def _failed(self, error: str) -> None:
        if self.failed is None:
            log.error("flags_rule_failed", rule=self.id, error=error)
        else:
            self.failed(self.id, error)


def compile_flag_rule(rule: FlagRule) -> tuple[CompiledFlagRule | None, list[tuple[str, str]]]:
    """Compile ``rule``; problems come as (field, message) so the loader can locate them."""
    problems: list[tuple[str, str]] = []
    window = parse_window(rule.window)
    if window is None:
        problems.append(("window", window_problem(rule.window) or _FORM))
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
        problems.extend(_tried(program, rule.when))
    if problems or window is None:
        return None, problems
    household = "household" in program.variables()
    return CompiledFlagRule(rule, window, program, household), []


def _tried(program: Any, when: str) -> list[tuple[str, str]]:
    """The first sample window ``when`` fails on or gives no true or false for, if any."""
    for what, sample in probes(when, household="household" in program.variables()):
        try:
            value = program.execute(dict(sample))
        except Exception as exc:  # noqa: BLE001  # a failure on well-typed aggregates is the rule's
            error = type(exc).__name__
            return [("when", f"CEL fails on well-formed aggregates ({error}), e.g. {what}")]
        if not isinstance(value, bool):
            return [("when", f"CEL condition does not evaluate to true or false, e.g. {what}")]
    return []
