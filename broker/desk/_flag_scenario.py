"""Running flag scenarios with the flag engine (``accord policy test`` passes this in)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from broker.desk._flag import Flag, child_key
from broker.desk._flagging import ChildState, FlagEngine
from broker.errors import AccordError, BundleInvalid
from broker.policy import ExpectedFlag, FlagScenario, Policy

__all__ = ["SCENARIO_LINKAGE_KEY", "run_flag_scenario"]

# Scenarios are tests: a fixed, public key links children reproducibly. Never a real key.
SCENARIO_LINKAGE_KEY: Final = b"accord-scenario-linkage-key-not-secret"


def _label(flag: Flag | ExpectedFlag, labels: dict[str, str]) -> str:
    if isinstance(flag, Flag):
        rule, child, ids = flag.rule, labels.get(flag.child, flag.child), flag.event_ids
    else:
        rule, child, ids = flag.rule, flag.label(), flag.event_ids
    return f"{rule} for {child}: [{', '.join(ids)}]"


def _labels(events: tuple[Any, ...]) -> dict[str, str]:
    """Child key → how the scenario names the child (NHS number, else names and dob)."""
    out: dict[str, str] = {}
    for event in events:
        for subject in event.get("subjects") or ():
            if not isinstance(subject, dict):
                continue
            key = child_key(SCENARIO_LINKAGE_KEY, subject)
            if key is not None and key not in out:
                fields = ("nhs_number",) if subject.get("nhs_number") else (
                    "given_name", "family_name", "dob")  # fmt: skip
                out[key] = " ".join(str(subject[f]) for f in fields)
    return out


def _key(
    rule: str, child: dict[str, str], ids: tuple[str, ...]
) -> tuple[str, str, tuple[str, ...]]:
    # An expectation always names a child that can be keyed (the parser checks it).
    return rule, child_key(SCENARIO_LINKAGE_KEY, child) or "", ids


def _failure(rule: str, error: str, first: int, times: int) -> str:
    more = f" (and {times - 1} more time{'s' if times > 2 else ''})" if times > 1 else ""
    return (
        f"rule {rule!r} failed at runtime ({error}) at flag_events[{first}]{more}, and did "
        f"not fire there: its condition cannot be evaluated on that window"
    )


def run_flag_scenario(
    scenario: FlagScenario, policy_for: Callable[[Path | None], Policy]
) -> list[str]:
    """Feed the scenario's events in arrival order; every difference from ``expect_flags``."""
    try:
        policy = policy_for(scenario.policies)
    except BundleInvalid as exc:
        return [f"policy bundle invalid: {exc}"]
    if not policy.flag_rules:
        return ["the policy bundle has no flag rules (flags.yaml)"]
    # A rule whose condition fails on a window does not fire there: said first, since the
    # flags it did not raise follow from it. (rule, error) → [first event index, times].
    failures: dict[tuple[str, str], list[int]] = {}
    at = 0

    def failed(rule: str, error: str) -> None:
        failures.setdefault((rule, error), [at, 0])[1] += 1

    engine = FlagEngine(policy.flag_rules, "scenario", SCENARIO_LINKAGE_KEY, rule_failed=failed)
    states: dict[str, ChildState] = {}
    got: list[Flag] = []
    for at, event in enumerate(scenario.events):  # ``failed`` reads ``at``
        try:
            got.extend(engine.process(event, states))
        except AccordError as exc:
            return [f"flag_events[{at}]: {exc}"]
    said = [_failure(rule, error, first, n) for (rule, error), (first, n) in failures.items()]
    return said + _differences(scenario, policy, got)


def _differences(scenario: FlagScenario, policy: Policy, got: list[Flag]) -> list[str]:
    """Every difference between the flags ``got`` and ``expect_flags``."""
    labels = _labels(scenario.events)
    known = {r.id for r in policy.flag_rules}
    diffs = [
        f"expect_flags[{i}]: unknown rule {e.rule!r}"
        for i, e in enumerate(scenario.expect)
        if e.rule not in known
    ]
    expected = [_key(e.rule, e.child, e.event_ids) for e in scenario.expect]
    actual = [(f.rule, f.child, f.event_ids) for f in got]
    if diffs or expected == actual:
        return diffs
    if Counter(expected) == Counter(actual):
        order = "; ".join(_label(f, labels) for f in got)
        return [f"the expected flags were raised in another order: {order}"]
    missing = Counter(expected) - Counter(actual)
    extra = Counter(actual) - Counter(expected)
    for e in scenario.expect:
        key = _key(e.rule, e.child, e.event_ids)
        if missing[key] > 0:
            missing[key] -= 1
            diffs.append(f"expected, not raised: {_label(e, labels)}")
    for f in got:
        key = (f.rule, f.child, f.event_ids)
        if extra[key] > 0:
            extra[key] -= 1
            diffs.append(f"raised, not expected: {_label(f, labels)}")
    return diffs
