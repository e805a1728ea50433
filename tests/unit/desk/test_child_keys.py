"""Desk child keys compare names as the broker's linkage does, and the upgrade that re-keys
children loses no window and raises no flag twice (flag engine and flag service)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from broker.config import KafkaSettings
from broker.desk import ChildState, Flag, FlagEngine, FlagServiceOptions, flag_id
from broker.desk import _flagging as flagging
from broker.desk._flag import ChildKeys, child_key, child_keys, view_child_keys
from broker.desk._flags_app import _Service
from broker.events import _consent as consent
from broker.keys import FileKeyStore
from broker.policy import load_bundle
from tests.unit.desk.conftest import old_key

REPO = Path(__file__).resolve().parents[3]
SECRET = b"k" * 32
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
DOB = "2019-03-02"
HOME = {"address": "14 Tame Road", "postcode": "DY4 7JQ"}


def child(given: str, family: str = "Hollis", dob: str = DOB, **more: Any) -> dict[str, Any]:
    return {"role": "child", "given_name": given, "family_name": family, "dob": dob, **more}


# -- the key ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spellings",
    [
        (child("Mary-Ann"), child("Mary Ann"), child("Maryann"), child(" MARY  ANN ")),
        (child("Siân"), child("Sian"), child("Sia\u0302n"), child("SIÂN")),
        (child("Liam", "O'Brien"), child("Liam", "OBrien"), child("Liam", "O Brien")),
    ],
)
def test_spellings_the_broker_treats_as_one_person_are_one_child(
    spellings: tuple[dict[str, Any], ...],
) -> None:
    keys = {child_key(SECRET, s) for s in spellings}
    assert len(keys) == 1
    assert None not in keys


def test_different_children_still_key_apart() -> None:
    base = child("Mary-Ann")
    others = [
        child("Mary-Ann", dob="2019-03-03"),
        child("Mary"),
        child("Marian"),
        child("Mary-Ann", "Hollins"),
        child("Sian"),
        child("Sean"),
        {**base, "nhs_number": "9993080233"},
    ]
    keys = [child_key(SECRET, s) for s in [base, *others]]
    assert None not in keys
    assert len(set(keys)) == len(keys)
    assert child_key(b"x" * 32, base) != child_key(SECRET, base)  # the party's own secret


def test_twins_named_by_number_are_two_children() -> None:
    """A newborn's placeholder names, "Twin 1" and "Twin 2", differ only by a digit: as one
    child at the desk, they would share one timeline and one window's count."""
    one, two = child_key(SECRET, child("Twin 1")), child_key(SECRET, child("Twin 2"))
    assert None not in (one, two)
    assert one != two
    assert child_key(SECRET, child("twin-1")) == one


@pytest.mark.parametrize("name", ["-", "?", " ", "--", "'"])
def test_a_name_with_no_letter_keys_no_one(name: str) -> None:
    """Two unknown-named children born the same day are not one child: neither is keyed."""
    assert child_key(SECRET, child(name)) is None
    assert child_key(SECRET, child("Ava", name)) is None
    view = {"subjects": [child(name, "Smith"), child(name, "Jones")]}
    assert [k.key for k in view_child_keys(view, SECRET)] == [None, None]


@pytest.mark.parametrize("dob", [20190302, None, "", ["2019-03-02"]])
def test_a_date_of_birth_that_is_not_text_keys_no_one(dob: Any) -> None:
    assert child_key(SECRET, child("Ava", dob=dob)) is None
    assert child_key(SECRET, child("Ava")) is not None


def test_a_letters_only_name_keeps_its_key_and_has_no_legacy_key() -> None:
    """Most names: their stored windows, flags and timelines need nothing at the upgrade."""
    for subject in (child("Ava", "Hart"), child(" ava ", "HART"), {"nhs_number": "9993080233"}):
        assert child_keys(SECRET, subject) == ChildKeys(old_key(SECRET, subject), None)


def test_a_name_keyed_anew_carries_the_key_it_had() -> None:
    for subject in (child("Mary-Ann"), child("Siân"), child("Liam", "O'Brien"), child("-")):
        keys = child_keys(SECRET, subject)
        assert keys.legacy == old_key(SECRET, subject)
        assert keys.legacy != keys.key


def test_an_ascii_name_is_not_decomposed(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: Any) -> str:
        raise AssertionError("an ASCII name paid for the Unicode decomposition")

    # The linkage's own module only: pytest itself normalises what it prints.
    monkeypatch.setattr(consent, "unicodedata", SimpleNamespace(normalize=refuse))
    assert child_keys(SECRET, child("Mary-Ann", "O'Brien")).key is not None
    monkeypatch.undo()
    assert child_keys(SECRET, child("Siân")).key == child_key(SECRET, child("Sian"))


# -- the flag engine across the upgrade -----------------------------------------------------


@pytest.fixture
def engine() -> FlagEngine:
    return FlagEngine(load_bundle(REPO / "policies").flag_rules, "sandwell-coord", SECRET)


@contextmanager
def before_upgrade(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The engine keys children as it did until 2026-12-05 while this is in force."""
    with monkeypatch.context() as m:
        m.setattr(flagging, "child_keys", lambda s, subject: ChildKeys(old_key(s, subject)))
        yield


def event(
    event_id: str, day: float, *subjects: dict[str, Any], cats: tuple[str, ...] = (), need: int = 2
) -> dict[str, Any]:
    return {
        "event_id": event_id, "type": "police.child_concern", "sender": "wmp",
        "occurred_at": (T0 + timedelta(days=day)).isoformat(), "need_level": need,
        "categories": list(cats), "subjects": list(subjects),
    }  # fmt: skip


DA = ("domestic_abuse",)


def rules(flags: list[Flag]) -> list[str]:
    return [f.rule for f in flags]


def test_an_old_record_and_a_new_one_spelt_the_other_way_fire_the_two_concerns_rule(
    engine: FlagEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window holds a record keyed the old way ("Maryann"); the next says "Mary-Ann"."""
    states: dict[str, ChildState] = {}
    with before_upgrade(monkeypatch):
        assert engine.process(event("e1", 0, child("Maryann"), cats=DA), states) == []
    [flag] = engine.process(event("e2", 1, child("Mary-Ann"), cats=DA), states)
    assert (flag.rule, flag.event_ids) == ("domestic-abuse-repeat", ("e1", "e2"))


def test_a_window_kept_under_the_old_key_joins_the_childs(
    engine: FlagEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    states: dict[str, ChildState] = {}
    with before_upgrade(monkeypatch):
        assert engine.process(event("e1", 0, child("Siân"), cats=DA), states) == []
    # After the upgrade, spelt as before: the old window is adopted, and the pair fires.
    [flag] = engine.process(event("e2", 1, child("Siân"), cats=DA), states)
    assert flag.event_ids == ("e1", "e2")
    assert flag.child == child_key(SECRET, child("Sian"))
    # Then spelt another way: the same child, the same window (and the rule has fired in it).
    assert rules(engine.process(event("e3", 2, child("Sian"), need=4), states)) == ["need-level-4"]
    [state] = [s for k, s in states.items() if k == flag.child]
    assert [r[2] for r in state["recs"]] == ["e1", "e2", "e3"]


def test_a_flag_raised_before_the_upgrade_is_not_raised_again_in_its_window(
    engine: FlagEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    states: dict[str, ChildState] = {}
    with before_upgrade(monkeypatch):
        engine.process(event("e1", 0, child("Mary-Ann"), cats=DA), states)
        [old] = engine.process(event("e2", 1, child("Mary-Ann"), cats=DA), states)
    assert old.child == old_key(SECRET, child("Mary-Ann"))
    # The delivery topic read again at the upgrade: both records are recognised.
    assert engine.process(event("e1", 0, child("Mary-Ann"), cats=DA), states) == []
    assert engine.process(event("e2", 1, child("Mary-Ann"), cats=DA), states) == []
    # A third concern in the same 30 days, spelt another way: the rule fired in this window.
    assert engine.process(event("e3", 2, child("Mary Ann"), cats=DA), states) == []
    # Once that window has passed, it fires again, naming the child by its key now.
    [again] = engine.process(event("e4", 31, child("Maryann"), cats=DA), states)
    assert again.child == child_key(SECRET, child("Mary Ann"))
    assert again.event_ids == ("e3", "e4")


def test_adopting_twice_changes_nothing_and_keeps_withdrawn_records_out(engine: FlagEngine) -> None:
    place = flagging.Placement("old", None, ("old",))
    rec = flagging.window_record(event("e1", 0, cats=DA))
    old = engine.apply(None, place, rec).state
    gone = engine.withdraw(engine.apply(old, place, flagging.window_record(event("e2", 1)))[0],
                           ["e2"])  # fmt: skip
    assert gone is not None
    adopted = engine.adopt(None, "old", gone)
    assert adopted is not None
    assert [r[2] for r in adopted["recs"]] == ["e1"]
    assert "e2" in adopted["gone"]
    assert engine.adopt(adopted, "old", gone) is adopted


def test_a_household_does_not_count_a_re_keyed_child_twice(
    engine: FlagEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One child at the address, named by its old key in the household's older records."""
    states: dict[str, ChildState] = {}
    mary_ann = child("Mary-Ann", **HOME)
    with before_upgrade(monkeypatch):
        engine.process(event("e1", 0, mary_ann, cats=DA), states)
    # The delivery topic read again at the upgrade (the old window is adopted), then news.
    assert engine.process(event("e1", 0, mary_ann, cats=DA), states) == []
    flags = engine.process(event("e2", 1, child("Mary Ann", **HOME), cats=DA), states)
    assert "household-domestic-abuse" not in rules(flags)
    flags = engine.process(event("e3", 2, mary_ann, cats=DA), states)
    assert "household-domestic-abuse" not in rules(flags)
    # A second child at the address still counts.
    flags = engine.process(event("e4", 3, child("Leo", **HOME), cats=DA), states)
    assert "household-domestic-abuse" in rules(flags)


# -- the flag service across the upgrade ----------------------------------------------------


class FakeTopic:
    def __init__(self, log: list[tuple[str, Any]]) -> None:
        self.log = log

    async def send(self, *, value: bytes, **_: Any) -> Any:
        self.log.append(("send", json.loads(value)))

        async def acked() -> None:
            return None

        return acked()


class FakeTable(dict[str, Any]):
    def __init__(self, log: list[tuple[str, Any]]) -> None:
        super().__init__()
        self.log = log

    def __setitem__(self, key: str, value: Any) -> None:
        self.log.append(("state", key))
        super().__setitem__(key, value)


def _service(tmp_path: Path) -> tuple[_Service, list[tuple[str, Any]]]:
    opts = FlagServiceOptions(
        party="sandwell-coord", kafka=KafkaSettings(),
        keystore=FileKeyStore(tmp_path / "keys", create=True),
        rules=load_bundle(REPO / "policies").flag_rules, linkage_secret=SECRET,
        datadir=tmp_path, partitions=3,
    )  # fmt: skip
    log: list[tuple[str, Any]] = []
    topics = (FakeTopic(log), FakeTopic(log), FakeTopic(log))
    service = _Service(opts, topics, (FakeTable(log), FakeTable(log)))
    service.published = set()
    return service, log


def _message(service: _Service, view: dict[str, Any]) -> bytes:
    """What the service's first step sends the child step for ``view``'s one child."""
    [place] = service.engine.placements(view)
    record = {k: view[k] for k in ("event_id", "occurred_at", "sender", "type", "need_level")}
    return json.dumps({"child": place.child, "household": place.household,
                       "residents": list(place.residents), "record": {**record, "categories":
                       view["categories"]}, "legacy": place.legacy,
                       "renamed": [list(p) for p in place.renamed]}).encode()  # fmt: skip


async def test_the_service_adopts_the_old_window_and_never_writes_under_the_old_key(
    tmp_path: Path,
) -> None:
    service, log = _service(tmp_path)
    old = old_key(SECRET, child("Siân"))
    assert old is not None
    rec = flagging.window_record(event("e1", 0, cats=DA))
    service.windows[old] = service.engine.apply(None, flagging.Placement(old, None, (old,)), rec)[0]
    log.clear()
    await service.on_child_record(_message(service, event("e2", 1, child("Siân"), cats=DA)), 0)
    [(_, flag)] = [entry for entry in log if entry[0] == "send"]
    assert (flag["rule"], flag["event_ids"]) == ("domestic-abuse-repeat", ["e1", "e2"])
    assert ("state", old) not in log


async def test_a_flag_on_the_topic_under_the_old_key_is_not_sent_again(tmp_path: Path) -> None:
    """Sent before the upgrade, then a crash before the window recorded its record: the
    record comes again, keyed anew, and the flag it raises is the one on the topic."""
    service, log = _service(tmp_path)
    subject = child("Liam", "O'Brien")
    old = old_key(SECRET, subject)
    assert old is not None
    service.published = {flag_id("need-level-4", old, "e1")}
    await service.on_child_record(_message(service, event("e1", 0, subject, need=4)), 0)
    assert [step for step, _ in log] == ["state"]  # the window still learns the record
    # A new record raises its own flag, under the child's key now.
    await service.on_child_record(_message(service, event("e2", 3, subject, need=4)), 0)
    [(_, flag)] = [entry for entry in log if entry[0] == "send"]
    assert flag["flag_id"] == flag_id("need-level-4", child_key(SECRET, subject) or "", "e2")
