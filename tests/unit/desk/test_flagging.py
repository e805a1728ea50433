"""The flag engine: the brief's window semantics, checked against an independent brute force."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.desk import ChildState, Flag, FlagEngine, child_key, flag_id, run_flag_scenario
from broker.desk._flag_scenario import SCENARIO_LINKAGE_KEY
from broker.policy import FlagRule, Policy, load_bundle, load_scenarios
from broker.policy._flag_scenario import FlagScenario
from broker.policy._flags import CompiledFlagRule, compile_flag_rule

REPO = Path(__file__).resolve().parents[3]
SHARED = REPO.parent / "shared" / "examples"
SECRET = b"k" * 32
T0 = datetime(2026, 1, 1, tzinfo=UTC)
CHILDREN = ("9993080233", "9990025312", "9995754649", "9995335530")


@dataclass(frozen=True)
class Rule:
    id: str
    window: timedelta
    cel: str
    # The same condition in plain Python, for the brute force: over the child's aggregates
    # and, for a household rule, the household's.
    py: Callable[[dict[str, Any], dict[str, Any]], bool]
    household: bool = False


RULES = (
    Rule("pair", timedelta(days=2), "contacts >= 2", lambda a, _: a["contacts"] >= 2),
    Rule(
        "multi",
        timedelta(days=90),
        "distinct_agencies >= 2 && contacts >= 3",
        lambda a, _: a["distinct_agencies"] >= 2 and a["contacts"] >= 3,
    ),
    Rule(
        "da",
        timedelta(days=30),
        "'domestic_abuse' in categories && contacts >= 2",
        lambda a, _: "domestic_abuse" in a["categories"] and a["contacts"] >= 2,
    ),
    Rule("nl4", timedelta(hours=12), "max_need >= 4", lambda a, _: a["max_need"] >= 4),
    Rule(
        "mixed",
        timedelta(days=7),
        "size(types) >= 2 && 'wmp' in senders",
        lambda a, _: len(a["types"]) >= 2 and "wmp" in a["senders"],
    ),
    Rule(
        "hh-da",
        timedelta(days=30),
        "'domestic_abuse' in household.categories && household.children >= 2",
        lambda _, h: "domestic_abuse" in h["categories"] and h["children"] >= 2,
        household=True,
    ),
    Rule(
        "hh-busy",
        timedelta(days=7),
        "household.contacts >= 3 && household.distinct_agencies > distinct_agencies",
        lambda a, h: h["contacts"] >= 3 and h["distinct_agencies"] > a["distinct_agencies"],
        household=True,
    ),
)
# Two addresses (spelt two ways each: one household per address) and no address at all.
ADDRESSES = (
    None,
    ("1 Park Lane", "DY4 7AA"),
    ("1, park lane.", "dy47aa"),
    ("9 Hill Road", "B69 1AB"),
    ("9 HILL ROAD", "B69 1AB"),
)


def _compiled(rules: tuple[Rule, ...] = RULES) -> tuple[CompiledFlagRule, ...]:
    out = []
    for r in rules:
        hours = int(r.window.total_seconds() // 3600)
        window = f"{hours // 24}d" if hours % 24 == 0 else f"{hours}h"
        done, problems = compile_flag_rule(FlagRule(id=r.id, title=r.id, window=window, when=r.cel))
        assert done is not None, problems
        out.append(done)
    return tuple(out)


def _engine() -> FlagEngine:
    return FlagEngine(_compiled(), "sandwell-coord", SECRET)


def _aggregates(window: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "contacts": len(window),
        "distinct_agencies": len({e["sender"] for e in window}),
        "max_need": max((e.get("need_level") or 0 for e in window), default=0),
        "categories": {c for e in window for c in e.get("categories", [])},
        "types": {e["type"] for e in window},
        "senders": {e["sender"] for e in window},
    }


def _home(subject: dict[str, Any]) -> tuple[str, str] | None:
    if not (subject.get("address") and subject.get("postcode")):
        return None
    words = "".join(c if c.isalnum() else " " for c in subject["address"].casefold()).split()
    return " ".join(words), "".join(c for c in subject["postcode"].casefold() if c.isalnum())


def _in_window(
    records: list[tuple[datetime, int, dict[str, Any]]], rule: Rule, t: datetime
) -> list[tuple[datetime, int, dict[str, Any]]]:
    return sorted((x for x in records if t - rule.window < x[0] <= t), key=lambda x: x[:2])


def _brute_force(  # noqa: PLR0912, PLR0915  # one reading of the rules, top to bottom, on purpose
    events: list[dict[str, Any]],
) -> list[tuple[str, str, tuple[str, ...]]]:
    """The brief's words, as directly as possible: full history, no state trimming."""
    history: dict[str, list[tuple[datetime, int, dict[str, Any]]]] = {}
    placed: dict[str, tuple[str, str]] = {}
    # household → event id → [t, arrival, event, children about, children evaluated for]
    houses: dict[tuple[str, str], dict[str, list[Any]]] = {}
    fired: list[tuple[str, str, Any, datetime]] = []
    # child → [(occurred, the household it was counted at, event)], for siblings
    counted: dict[str, list[tuple[datetime, tuple[str, str], dict[str, Any]]]] = {}
    out: list[tuple[str, str, tuple[str, ...]]] = []
    arrival = 0
    for ev in events:
        t = datetime.fromisoformat(ev["occurred_at"])
        kids: dict[str, tuple[str, str] | None] = {}
        for s in ev["subjects"]:
            if s["role"] == "child" and s.get("nhs_number") and s["nhs_number"] not in kids:
                kids[s["nhs_number"]] = _home(s)
        for nhs, own in kids.items():
            mine = history.setdefault(nhs, [])
            if any(e["event_id"] == ev["event_id"] for _, _, e in mine):
                continue
            arrival += 1
            mine.append((t, arrival, ev))

            for rule in (r for r in RULES if not r.household):
                window = _in_window(mine, rule, t)
                if not rule.py(_aggregates([e for _, _, e in window]), {}):
                    continue
                if any(r == rule.id and c == nhs and t - rule.window < f <= t
                       for r, c, _, f in fired):  # fmt: skip
                    continue
                fired.append((rule.id, nhs, None, t))
                out.append((rule.id, nhs, tuple(e["event_id"] for _, _, e in window)))
            if own is not None:
                placed[nhs] = own
            home = placed.get(nhs)
            if home is None:
                continue
            residents = {n for n, o in kids.items() if o == own} if own else {nhs}
            counted.setdefault(nhs, []).append((t, home, ev))
            house = houses.setdefault(home, {})
            entry = house.setdefault(ev["event_id"], [t, arrival, ev, set(), set()])
            entry[3] |= residents | {nhs}
            entry[4].add(nhs)
            for rule in (r for r in RULES if r.household):
                there = sorted((x for x in house.values() if t - rule.window < x[0] <= t),
                               key=lambda x: x[:2])  # fmt: skip
                household = {**_aggregates([x[2] for x in there]),
                             "children": len({c for x in there for c in x[3]})}  # fmt: skip
                own_window = _in_window(mine, rule, t)
                if not rule.py(_aggregates([e for _, _, e in own_window]), household):
                    continue
                if any(r == rule.id and c == nhs and h == home and t - rule.window < f <= t
                       for r, c, h, f in fired):  # fmt: skip
                    continue
                fired.append((rule.id, nhs, home, t))
                ids = {x[2]["event_id"] for x in there}
                ranked = [(x[0], 0, x[1], x[2]["event_id"]) for x in there]
                ranked += [(w[0], 1, w[1], w[2]["event_id"]) for w in own_window
                           if w[2]["event_id"] not in ids]  # fmt: skip
                out.append((rule.id, nhs, tuple(i for *_, i in sorted(ranked))))
                # Fired: checked at once for each sibling, in key order: a child with a
                # record counted at this address in the window, whose latest placement is
                # still this address, and whom this record does not name at all (each child
                # it names is evaluated for itself); over its own records counted here.
                for other in sorted(counted, key=lambda n: child_key(SECRET, {"nhs_number": n})):
                    about = [e for u, h, e in counted[other]
                             if h == home and t - rule.window < u <= t]  # fmt: skip
                    if other in kids or placed.get(other) != home or not about:
                        continue
                    if any(r == rule.id and c == other and h == home and t - rule.window < f <= t
                           for r, c, h, f in fired):  # fmt: skip
                        continue
                    if not rule.py(_aggregates(about), household):
                        continue
                    fired.append((rule.id, other, home, t))
                    out.append((rule.id, other, tuple(x[2]["event_id"] for x in there)))
    return out


def _run(events: list[dict[str, Any]], *, via_json: bool = False) -> list[Flag]:
    engine = _engine()
    states: dict[str, ChildState] = {}
    flags: list[Flag] = []
    for ev in events:
        flags.extend(engine.process(ev, states))
        if via_json:  # as a faust table stores it
            states = {k: json.loads(json.dumps(v)) for k, v in states.items()}
    return flags


def _as_tuples(flags: list[Flag]) -> list[tuple[str, str, tuple[str, ...]]]:
    by_key = {child_key(SECRET, {"nhs_number": n}): n for n in CHILDREN}
    return [(f.rule, by_key[f.child], f.event_ids) for f in flags]


@st.composite
def _streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(min_value=1, max_value=40))
    events: list[dict[str, Any]] = []
    newest = 0
    for i in range(n):
        if events and draw(st.integers(0, 9)) == 0:
            events.append(dict(draw(st.sampled_from(events))))  # a redelivery
            continue
        # Half-days since T0 (every window is a multiple, so boundaries are hit often):
        # mostly forward, sometimes late, never later than 89 days.
        step = draw(st.one_of(st.integers(-4, 8), st.integers(-2 * 89, 2 * 40)))
        tick = max(0, newest + step, newest - 2 * 89)
        newest = max(newest, tick)
        kids = draw(st.lists(st.sampled_from(CHILDREN), min_size=0, max_size=3))
        subjects: list[dict[str, Any]] = []
        for k in kids:
            home = draw(st.sampled_from(ADDRESSES))
            at = {"address": home[0], "postcode": home[1]} if home else {}
            subjects.append({"role": "child", "nhs_number": k, **at})
        if draw(st.booleans()):
            subjects.insert(draw(st.integers(0, len(subjects))), {"role": "parent"})
        events.append(
            {
                "event_id": f"e{i}",
                "type": draw(st.sampled_from(["police.child_concern", "health.gp_concern"])),
                "sender": draw(st.sampled_from(["wmp", "swbh", "sandwell-housing"])),
                "occurred_at": (T0 + timedelta(hours=12 * tick)).isoformat(),
                "need_level": draw(st.integers(0, 4)),
                "categories": draw(
                    st.lists(
                        st.sampled_from(["domestic_abuse", "neglect"]), max_size=2, unique=True
                    )
                ),
                "subjects": subjects,
            }
        )
    return events


@settings(max_examples=300)
@given(_streams())
def test_the_engine_raises_exactly_what_the_brute_force_derives(
    events: list[dict[str, Any]],
) -> None:
    assert _as_tuples(_run(events)) == _brute_force(events)


@settings(max_examples=100)
@given(_streams(), st.data())
def test_a_restart_that_reprocesses_records_raises_nothing_twice(
    events: list[dict[str, Any]], data: st.DataObject
) -> None:
    """State saved after record k, records j..k processed again, then the rest: the flags are
    exactly one run's (what the faust service does after a crash between state and offset)."""
    k = data.draw(st.integers(0, len(events)))
    j = data.draw(st.integers(0, k))
    engine = _engine()
    states: dict[str, ChildState] = {}
    flags: list[Flag] = []
    for ev in events[:k]:
        flags.extend(engine.process(ev, states))
    saved = json.loads(json.dumps(states))
    restarted = _engine()
    for ev in events[j:]:
        flags.extend(restarted.process(ev, saved))
    assert [f.flag_id for f in flags] == [f.flag_id for f in _run(events)]


@settings(max_examples=60)
@given(_streams())
def test_state_is_json_and_survives_a_round_trip_at_every_step(
    events: list[dict[str, Any]],
) -> None:
    assert _run(events, via_json=True) == _run(events)


def test_state_is_trimmed_to_twice_the_longest_window() -> None:
    engine = _engine()
    states: dict[str, ChildState] = {}
    for day in range(400):
        ev = {
            "event_id": f"d{day}",
            "type": "police.child_concern",
            "sender": "wmp",
            "occurred_at": (T0 + timedelta(days=day)).isoformat(),
            "need_level": 4,
            "subjects": [{"role": "child", "nhs_number": CHILDREN[0]}],
        }
        engine.process(ev, states)
    [state] = states.values()
    assert len(state["recs"]) == 180  # days 220..399: (newest - 2 x 90 days, newest]
    assert all(len(times) <= 180 for times in state["fired"].values())
    assert len(json.dumps(state)) < 40_000


def test_a_flag_names_rule_child_records_and_a_deterministic_id() -> None:
    ev = {
        "event_id": "x1",
        "type": "police.domestic_incident",
        "sender": "wmp",
        "occurred_at": "2026-02-01T22:40:00+00:00",
        "need_level": 4,
        "subjects": [{"role": "child", "nhs_number": CHILDREN[1], "given_name": "Ava"}],
    }
    [flag] = _engine().process(ev, {})
    child = child_key(SECRET, {"nhs_number": CHILDREN[1]})
    assert child is not None
    assert flag.rule == "nl4"
    assert flag.child == child
    assert flag.flag_id == flag_id("nl4", child, "x1")
    assert flag.event_ids == ("x1",)
    assert flag.trigger_event_id == "x1"
    assert flag.raised_at == datetime(2026, 2, 1, 22, 40, tzinfo=UTC)
    assert flag.window_seconds == 12 * 3600
    assert flag.party == "sandwell-coord"
    # No personal data in what the desk is sent.
    body = flag.model_dump_json()
    assert CHILDREN[1] not in body
    assert "Ava" not in body


def test_withdrawn_records_leave_the_window() -> None:
    def ev(i: int, day: int, sender: str) -> dict[str, Any]:
        return {
            "event_id": f"w{i}",
            "type": "police.child_concern",
            "sender": sender,
            "occurred_at": (T0 + timedelta(days=day)).isoformat(),
            "need_level": 1,
            "subjects": [{"role": "child", "nhs_number": CHILDREN[2]}],
        }

    def rules_after(withdraw: list[str]) -> list[str]:
        engine = _engine()
        states: dict[str, ChildState] = {}
        engine.process(ev(1, 0, "wmp"), states)
        engine.process(ev(2, 5, "swbh"), states)
        [key] = states
        if withdraw:
            changed = engine.withdraw(states[key], withdraw)
            assert changed is not None
            states[key] = changed
        return [f.rule for f in engine.process(ev(3, 10, "wmp"), states)]

    assert "multi" in rules_after([])
    assert "multi" not in rules_after(["w2", "unrelated"])
    # Replayed after the withdrawal (a restart's reprocessing), the record stays out.
    engine, states = _engine(), {}
    engine.process(ev(1, 0, "wmp"), states)
    engine.process(ev(2, 5, "swbh"), states)
    [key] = states
    changed = engine.withdraw(states[key], ["w2"])
    assert changed is not None
    states[key] = changed
    assert engine.process(ev(2, 5, "swbh"), states) == []
    assert [r[2] for r in states[key]["recs"]] == ["w1"]
    assert "multi" not in [f.rule for f in engine.process(ev(3, 10, "wmp"), states)]
    engine, states = _engine(), {}
    engine.process(ev(1, 0, "wmp"), states)
    assert engine.withdraw(next(iter(states.values())), ["unrelated"]) is None


def _flag_scenarios(path: Path) -> list[FlagScenario]:
    return [s for s in load_scenarios(path) if isinstance(s, FlagScenario)]


def test_the_project_flag_scenarios_pass() -> None:
    policy = load_bundle(REPO / "policies")
    scenarios = _flag_scenarios(REPO / "policies" / "scenarios" / "flags.yaml")
    assert len(scenarios) >= 6
    for scenario in scenarios:
        assert run_flag_scenario(scenario, lambda _: policy) == [], scenario.name


def test_the_shared_sandwell_flag_scenario_passes_unchanged(shared_dir: Path) -> None:
    path = shared_dir / "examples" / "flag-scenarios" / "sandwell-flags.yaml"
    [scenario] = _flag_scenarios(path)
    policies: dict[Path, Policy] = {}

    def policy_for(p: Path | None) -> Policy:
        assert p is not None
        return policies.setdefault(p, load_bundle(p))

    assert run_flag_scenario(scenario, policy_for) == []
    assert len(scenario.expect) == 9


def test_a_wrong_expectation_is_reported_precisely() -> None:
    policy = load_bundle(REPO / "policies")
    [scenario, *_] = _flag_scenarios(REPO / "policies" / "scenarios" / "flags.yaml")
    wrong = FlagScenario(scenario.name, scenario.file, 0, None, scenario.events, ())
    diffs = run_flag_scenario(wrong, lambda _: policy)
    assert diffs == ["raised, not expected: domestic-abuse-repeat for 9990025312: [wb-3, wb-4]"]
    assert SCENARIO_LINKAGE_KEY  # a fixed, public key: scenarios are reproducible


def test_a_record_redelivered_long_after_it_left_the_kept_window_raises_nothing_again() -> None:
    """Found by the property test: state keeps two longest windows of records, yet a record
    redelivered months later (a replay, a restart far behind) is still recognised."""
    child = [{"role": "child", "nhs_number": CHILDREN[0]}]
    urgent = {"event_id": "e-urgent", "type": "police.child_concern", "sender": "wmp",
              "occurred_at": T0.isoformat(), "need_level": 4, "categories": [],
              "subjects": child}  # fmt: skip
    later = {**urgent, "event_id": "e-later", "need_level": 1,
             "occurred_at": (T0 + timedelta(days=200)).isoformat()}  # fmt: skip
    flags = _run([urgent, later, urgent])
    assert [(f.rule, f.event_ids) for f in flags] == [("nl4", ("e-urgent",))]
