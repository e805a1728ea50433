"""The team's "New records since a decision", on SQLite and on a real PostgreSQL: which
records about a child count, and the children newest arrivals first."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from broker.desk import DeskStore, open_desk_store
from broker.desk._store_since import _COUNTED
from tests.unit.desk.conftest import T0, delivery

OUTCOME = "coordination.referral_outcome"
OFFER = {"type": OUTCOME, "outcome": "support_offered"}


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DeskStore]:
    if request.param == "sqlite":
        urls: Iterator[str] = iter([f"sqlite:///{tmp_path / 'desk.db'}"])
    else:
        from tests.postgres import fresh_database

        urls = fresh_database(request.getfixturevalue("postgres_server"))
    for url in urls:
        s = open_desk_store(url, home=tmp_path, party="p")
        yield s
        s.close()


def test_a_closure_as_withdrawn_is_no_decision_about_the_child_since_which_records_are_new(
    any_store: DeskStore,
) -> None:
    any_store.add_delivery(delivery("e1"), ["c1"], T0)
    any_store.decide(action="signpost", reason="r", by="kim", at=T0, child="c1")
    any_store.add_delivery(delivery("e2"), ["c1"], T0 + timedelta(minutes=5))
    any_store.decide(action="records_withdrawn", reason="r", by="kim",
                     at=T0 + timedelta(minutes=10), child="c1")  # fmt: skip
    assert any_store.new_since_decision() == [("c1", 1, T0)]


def test_only_a_hubs_offer_of_support_to_the_teams_referral_is_no_record_since_a_decision(
    any_store: DeskStore,
) -> None:
    """A declined or closed answer (the child's need is the team's again), one of a value the
    desk does not know or none, or whose view it cannot read, another referral's answer,
    another type of record naming the referral, and records with no reference are all new."""
    any_store.decide(action="refer", reason="r", by="kim", at=T0, child="c1",
                     published_event="ref-1")  # fmt: skip
    later = T0 + timedelta(minutes=5)
    for eid, kind, reference, outcome in (
        ("o1", OUTCOME, "ref-1", "support_offered"),  # the answer: not new
        ("o2", OUTCOME, "ref-1", "declined"),
        ("o3", OUTCOME, "ref-1", "closed"),
        ("o4", OUTCOME, "ref-1", "withdrawn"),
        ("o5", OUTCOME, "ref-1", None),
        ("o6", OUTCOME, "ref-1", "support_offered"),  # its view made unreadable below
        ("o7", OUTCOME, "ref-9", "support_offered"),
        ("o8", OUTCOME, None, "support_offered"),
        ("e1", "police.child_concern", "ref-1", "support_offered"),
        ("e2", "police.child_concern", None, None),
    ):
        view = {} if outcome is None else {"outcome": outcome}
        any_store.add_delivery(delivery(eid, type=kind, reference=reference, **view), ["c1"],
                               later)  # fmt: skip
    any_store._q("UPDATE desk_records SET view = 'not json' WHERE event_id = 'o6'")
    assert any_store.new_since_decision() == [("c1", 9, T0)]


def test_an_offer_of_support_is_left_out_only_for_the_child_the_referral_was_about(
    any_store: DeskStore,
) -> None:
    """An answer naming c2 (too) that references the referral about c1 is new for c2; a
    legacy referral decision naming no child leaves out nothing."""
    for child, action, published in (
        ("c1", "refer", "ref-1"),
        ("c2", "signpost", None),
        (None, "refer", "ref-0"),
        ("c3", "signpost", None),
    ):
        any_store.decide(action=action, reason="r", by="kim", at=T0, child=child,
                         published_event=published)  # fmt: skip
    answer = {"type": OUTCOME, "outcome": "support_offered"}
    later = T0 + timedelta(minutes=5)
    any_store.add_delivery(delivery("o1", reference="ref-1", **answer), ["c1", "c2"], later)
    any_store.add_delivery(delivery("o2", reference="ref-0", **answer), ["c3"],
                           later + timedelta(minutes=1))  # fmt: skip
    assert any_store.new_since_decision() == [("c3", 1, T0), ("c2", 1, T0)]


def test_a_child_whose_newest_record_was_an_offer_of_support_orders_by_the_next_newest(
    any_store: DeskStore,
) -> None:
    """c1's two offers (one time, the newest of all) are taken off: c1 orders by e1, after
    c2 and c3; c3's offer, older than its other record, changes only its count."""
    for child, action, published in (("c1", "refer", "ref-1"), ("c2", "signpost", None),
                                     ("c3", "refer", "ref-3")):  # fmt: skip
        any_store.decide(action=action, reason="r", by="kim", at=T0, child=child,
                         published_event=published)  # fmt: skip
    for eid, child, reference, minutes, view in (
        ("e1", "c1", None, 5, {}),
        ("o1", "c1", "ref-1", 20, OFFER),
        ("o2", "c1", "ref-1", 20, OFFER),
        ("e2", "c2", None, 10, {}),
        ("o3", "c3", "ref-3", 12, OFFER),
        ("e3", "c3", None, 15, {}),
    ):
        any_store.add_delivery(delivery(eid, reference=reference, **view), [child],
                               T0 + timedelta(minutes=minutes))  # fmt: skip
    assert any_store.new_since_decision() == [("c3", 1, T0), ("c2", 1, T0), ("c1", 1, T0)]


@pytest.fixture(params=["sqlite", "postgresql"])
def two_stores(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[DeskStore, DeskStore]]:
    """One desk database, opened by two desk processes (two connections)."""
    if request.param == "sqlite":
        urls: Iterator[str] = iter([f"sqlite:///{tmp_path / 'desk.db'}"])
    else:
        from tests.postgres import fresh_database

        urls = fresh_database(request.getfixturevalue("postgres_server"))
    for url in urls:
        s = open_desk_store(url, home=tmp_path, party="p")
        other = open_desk_store(url, home=tmp_path, party="p")
        yield s, other
        other.close()
        s.close()


@pytest.mark.parametrize("minutes", [4, 6], ids=["earlier", "later"])
def test_an_offer_another_process_stores_between_the_count_and_the_answers_is_not_taken_off(
    two_stores: tuple[DeskStore, DeskStore], minutes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The count and the answers read one snapshot: an offer stored between them by another
    process is in neither (until the next load), whether its received_at is later than the
    counted record's or earlier (that process's clock behind), so c1 keeps its one record."""
    store, other = two_stores
    store.decide(action="refer", reason="r", by="kim", at=T0, child="c1",
                 published_event="ref-1")  # fmt: skip
    store.add_delivery(delivery("e1"), ["c1"], T0 + timedelta(minutes=5))
    calls: list[str] = []
    real = store._q

    def query(sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        rows = real(sql, params)
        calls.append(sql)
        if "COUNT(*)" in sql:  # between the count and the answers
            late = delivery("o1", reference="ref-1", **OFFER)
            other.add_delivery(late, ["c1"], T0 + timedelta(minutes=minutes))
        return rows

    monkeypatch.setattr(store, "_q", query)
    assert store.new_since_decision() == [("c1", 1, T0)]
    assert calls[0].startswith("BEGIN")
    assert calls[-1] == "COMMIT"
    monkeypatch.undo()
    assert store.new_since_decision() == [("c1", 1, T0)]  # the next: 2 counted, 1 off


def _expected(
    decisions: list[tuple[str | None, str, datetime, str | None]],
    records: dict[str, tuple[list[str], str, str | None, datetime, str | None]],
    hidden: set[str],
) -> list[tuple[str, int, datetime]]:
    """docs/desk.md's rule, record by record: (child, count, latest decision), newest first."""
    last: dict[str, datetime] = {}
    for child, action, at, _ in decisions:
        if child is not None and action != "records_withdrawn":
            last[child] = max(last.get(child, at), at)
    referrals = {pub: child for child, action, _, pub in decisions if action == "refer" and pub}
    counted: dict[str, list[datetime]] = {}
    for event_id, (children, kind, reference, received, outcome) in records.items():
        for child in children:
            if event_id in hidden or child not in last or received <= last[child]:
                continue
            answer = kind == OUTCOME and reference is not None
            if answer and referrals.get(reference) == child and outcome == "support_offered":
                continue
            counted.setdefault(child, []).append(received)
    ordered = sorted(sorted(counted), key=lambda child: max(counted[child]), reverse=True)
    return [(child, len(counted[child]), last[child]) for child in ordered]


@pytest.mark.parametrize("seed", range(6))
def test_the_children_and_counts_are_the_rules_record_by_record_over_a_random_store(
    any_store: DeskStore, seed: int
) -> None:
    """Children, decisions (some closing as withdrawn, some legacy referrals naming no child),
    records of one or two children at tied times, answers of every kind to this child's
    referral or another's, hidden records and unreadable views: the store's answer is the rule
    applied to each record, whichever of a child's records is the newest left."""
    rng = random.Random(seed)  # noqa: S311  # a draw of test data
    children = [f"c{n}" for n in range(6)]
    at = lambda: T0 + timedelta(minutes=rng.randrange(120))  # noqa: E731  # ties wanted
    decisions: list[tuple[str | None, str, datetime, str | None]] = []
    for n in range(12):
        child = rng.choice([*children, None])
        action = rng.choice(["refer", "refer", "refer", "signpost", "records_withdrawn"])
        published = f"ref-{n}" if action == "refer" else None
        decisions.append((child, action, at() - timedelta(minutes=60), published))
        any_store.decide(action=action, reason="r", by="kim", at=decisions[-1][2], child=child,
                         published_event=published)  # fmt: skip
    referrals = [(child, pub) for child, _, _, pub in decisions if pub]
    records: dict[str, tuple[list[str], str, str | None, datetime, str | None]] = {}
    for n in range(60):
        kids = rng.sample(children, rng.choice([1, 1, 1, 2]))
        kind = rng.choice([OUTCOME, OUTCOME, OUTCOME, "police.child_concern"])
        reference = None
        if referrals and rng.random() < 0.8:  # mostly a referral's child's own answer
            owner, reference = rng.choice(referrals)
            if owner is not None and owner not in kids and rng.random() < 0.8:
                kids[0] = owner
        outcome = rng.choice(["support_offered", "support_offered", "declined", None])
        records[f"e{n}"] = (kids, kind, reference, at(), outcome)
        view = {} if outcome is None else {"outcome": outcome}
        any_store.add_delivery(delivery(f"e{n}", type=kind, reference=reference, **view),
                               kids, records[f"e{n}"][3])  # fmt: skip
    hidden = set(rng.sample(sorted(records), 6))
    any_store.hide(sorted(hidden), "Consent withdrawn", T0)
    for event_id in rng.sample(sorted(records), 3):  # unreadable: shown, not taken off
        any_store._q("UPDATE desk_records SET view = 'not json' WHERE event_id = ?", (event_id,))
        kids, kind, reference, received, _ = records[event_id]
        records[event_id] = (kids, kind, reference, received, None)
    expected = _expected(decisions, records, hidden)
    assert len(expected) >= 2  # the draw leaves an order to compare
    assert any_store.new_since_decision() == expected


_SINCE_INDEXES = ("desk_decisions_by_child", "desk_children_by_child_event", "desk_records_since")


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_a_store_made_before_the_new_since_indexes_is_given_them_when_opened(
    request: pytest.FixtureRequest, tmp_path: Path, engine: str
) -> None:
    """A store made before 2026-12-07's indexes (dropped here) has them once a desk opens it:
    the new-since query reads them on every load of the team's home page."""
    if engine == "sqlite":
        urls: Iterator[str] = iter([f"sqlite:///{tmp_path / 'desk.db'}"])
        look = "SELECT name FROM sqlite_master WHERE type = 'index'"
    else:
        from tests.postgres import fresh_database

        urls = fresh_database(request.getfixturevalue("postgres_server"))
        look = "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
    for url in urls:
        old = open_desk_store(url, home=tmp_path, party="p")
        for name in _SINCE_INDEXES:
            old._q(f"DROP INDEX {name}")
        assert not set(_SINCE_INDEXES) & {str(row[0]) for row in old._q(look)}
        old.close()
        again = open_desk_store(url, home=tmp_path, party="p")
        try:
            indexes = {str(row[0]) for row in again._q(look)}
            assert set(_SINCE_INDEXES) <= indexes
        finally:
            again.close()


def test_the_count_of_new_records_reads_covering_indexes_on_sqlite(tmp_path: Path) -> None:
    """Not each record's row (its view): at 300,000 records that was 4 s of a 6 s page."""
    store = open_desk_store(f"sqlite:///{tmp_path / 'desk.db'}", home=tmp_path, party="p")
    plan = str(store._q("EXPLAIN QUERY PLAN " + _COUNTED, ("records_withdrawn", OUTCOME)))
    store.close()
    assert "COVERING INDEX desk_records_since" in plan
    assert "COVERING INDEX desk_children_by_child_event" in plan
