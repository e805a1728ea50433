"""Why an agreement decides nothing, said: draft, suspended, lapsed or not yet begun, each
agreement of a decision named when its clauses come from several."""

from __future__ import annotations

import copy
from datetime import date
from pathlib import Path

from broker.policy import Agreement, dated_notes, inactive_reason
from broker.policy._dated import inactive_why
from tests.unit.policy.kit import AT, POLICE_TO_COORD, agreement, by_recipient, event, load


def test_each_inactive_status_and_date_is_said_and_both_end_days_are_in_force() -> None:
    body = agreement("a", [copy.deepcopy(POLICE_TO_COORD)], valid_from="2026-01-01",
                     valid_until="2026-12-31")  # fmt: skip
    a = Agreement.model_validate(body)
    assert inactive_why(a, date(2026, 1, 1)) is None
    assert inactive_why(a, date(2026, 12, 31)) is None
    assert inactive_why(a, date(2027, 1, 1)) == "lapsed 2026-12-31"
    assert inactive_why(a, date(2025, 12, 31)) == "starts 2026-01-01"
    assert inactive_why(a.model_copy(update={"status": "draft"}), date(2026, 6, 1)) == "draft"
    assert inactive_why(a.model_copy(update={"status": "suspended"}), date(2026, 6, 1)) == (
        "suspended"
    )


def test_a_decision_resting_on_two_inactive_agreements_names_each(tmp_path: Path) -> None:
    """The same recipient under a lapsed agreement and a suspended one: one reason alone
    would send the officer to only one of them."""
    lapsed = agreement("old", [copy.deepcopy(POLICE_TO_COORD) | {"id": "old-police"}],
                       valid_from="2024-01-01", valid_until="2025-11-30")  # fmt: skip
    stopped = agreement("stopped", [copy.deepcopy(POLICE_TO_COORD) | {"id": "stopped-police"}],
                        status="suspended")  # fmt: skip
    policy = load(tmp_path / "b", agreements=[lapsed, stopped])
    coord = by_recipient(policy.decide(event(), [], at=AT))["coord"]
    assert coord.reason == "agreement-inactive"
    assert (
        inactive_reason(policy.bundle, coord, at=AT) == "old: lapsed 2025-11-30; stopped: suspended"
    )


def test_only_approved_agreements_outside_their_dates_are_noted_and_lapsed_is_a_warning(
    tmp_path: Path,
) -> None:
    clause = copy.deepcopy(POLICE_TO_COORD)
    agreements = [
        agreement("gone", [clause | {"id": "c1"}], valid_from="2024-01-01",
                  valid_until="2025-11-30"),
        agreement("later", [clause | {"id": "c2"}], valid_from="2027-01-01",
                  valid_until="2028-01-01"),
        agreement("now", [clause | {"id": "c3"}]),
        agreement("off", [clause | {"id": "c4"}], status="suspended", valid_until="2026-01-31"),
    ]  # fmt: skip
    policy = load(tmp_path / "b", agreements=agreements)
    notes = dated_notes(policy.bundle, date(2026, 11, 22), policy.source)
    assert [(level, line.split(":")[0]) for level, line in notes] == [
        ("warning", "agreements/gone.yaml"),
        ("note", "agreements/later.yaml"),
    ]
    # A bundle built in code has no files: the agreement alone is named.
    assert dated_notes(policy.bundle, date(2026, 11, 22))[0][1].startswith("agreement 'gone' ")
