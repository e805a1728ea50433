"""policy check warns of a lawful basis that does not fit a clause's senders: law_enforcement
from a party the bundle cannot show is a competent authority, police events without
article10 (docs/policy-language.md, Lawful bases). Warnings: the bundle still loads."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tests.unit.policy.kit import ENCOMPASS, POLICE_TO_COORD, agreement, load

LAW_ENFORCEMENT = "law_enforcement is a competent authority's (the police's) disclosure"


def _warnings(tmp_path: Path, **change: Any) -> list[str]:
    clause = copy.deepcopy(POLICE_TO_COORD)
    basis = change.pop("lawful_basis", {})
    clause["lawful_basis"].update(basis)
    clause.update(change)
    return load(tmp_path / "b", agreements=[agreement("a", [clause])]).warnings()


def test_police_events_under_article10_are_not_warned_of(tmp_path: Path) -> None:
    assert _warnings(tmp_path) == []
    assert _warnings(tmp_path, lawful_basis={"article10": "law_enforcement"}) == []


@pytest.mark.parametrize("article", ["article9", "article10"])
@pytest.mark.parametrize(
    ("sender", "kind"),
    [("school-a", "a school"), ("hub-tipton", "a hub"), ("coord", "a co-ordinating team")],
)
def test_law_enforcement_from_a_desk_is_warned_of(
    tmp_path: Path, article: str, sender: str, kind: str
) -> None:
    assert _warnings(
        tmp_path,
        lawful_basis={article: "law_enforcement"},
        to=["hub-tipton"],
        **{"from": ["wmp", sender]},
    ) == [
        f"agreement 'a', clause 'police-to-coord': {LAW_ENFORCEMENT}, which {sender}, {kind}, "
        "is not"
    ]


def test_law_enforcement_beside_events_that_are_not_the_polices_is_warned_of(
    tmp_path: Path,
) -> None:
    """An NHS trust is an agency too: only police events show the sender is the police."""
    assert _warnings(
        tmp_path,
        lawful_basis={"article9": "law_enforcement"},
        event_types=["police.domestic_incident", "health.ae_attendance"],
        **{"from": ["wmp", "swbh"]},
    ) == [
        f"agreement 'a', clause 'police-to-coord': {LAW_ENFORCEMENT}, but the clause shares "
        "health.ae_attendance, not a police event: nothing shows its sender is one"
    ]


def test_police_events_without_article10_are_warned_of(tmp_path: Path) -> None:
    assert _warnings(
        tmp_path,
        lawful_basis={"article10": None, "article9": "safeguarding_children"},
        event_types=["health.ae_attendance", "police.child_concern"],
    ) == [
        "agreement 'a', clause 'police-to-coord': shares police events (police.child_concern) "
        "without article10: police information about incidents is usually criminal offence "
        "data (allegations included), which needs an Art 10 condition; add one, or record in "
        "the agreement's DPIA why none applies"
    ]


def test_a_clause_sharing_only_missing_episodes_without_article10_is_not_warned_of(
    tmp_path: Path,
) -> None:
    """A child gone missing is rarely offence data: only incidents and concerns warn."""
    assert (
        _warnings(
            tmp_path,
            lawful_basis={"article10": None, "article9": "safeguarding_children"},
            event_types=["police.missing_episode"],
        )
        == []
    )


def test_policy_check_places_each_warning_at_its_clauses_file_and_line(tmp_path: Path) -> None:
    """Problems were placed and warnings not: an author with forty clauses had to search."""
    clause = copy.deepcopy(ENCOMPASS)
    clause.pop("subjects")
    first = copy.deepcopy(POLICE_TO_COORD)
    policy = load(tmp_path / "b", agreements=[agreement("a", [first, clause])])
    placed = policy.warnings(placed=True)
    assert placed, policy.warnings()
    text = (tmp_path / "b" / "agreements" / "a.yaml").read_text().splitlines()
    for line, bare in zip(placed, policy.warnings(), strict=True):
        where, _, rest = line.partition(": ")
        assert rest == bare
        name, number = where.split(":")
        assert name == "agreements/a.yaml"
        clause_id = bare.split("clause '", 1)[1].split("'", 1)[0]
        assert text[int(number) - 1].strip() in {f"- id: {clause_id}", f"- id: '{clause_id}'"}
