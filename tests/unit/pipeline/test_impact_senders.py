"""The impact report's rows name the agreement their reason is from, and a sender only the
new bundle knows counts as refused, not as passed over, under the bundle in force."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from broker.keys import FileKeyStore
from broker.pipeline import ImpactRow, compare
from broker.pipeline._impact import Decided, redecide
from broker.policy import Policy, load_bundle
from broker.synthetic import SyntheticFamilies
from tests.unit.pipeline.conftest import ENVELOPE, POLICIES
from tests.unit.pipeline.test_impact import _Records, impact_keys, placed

__all__ = ["impact_keys"]  # the fixture, used here by name

HOUSING = "wm-housing-assoc"


def _edited(root: Path, edits: dict[str, list[tuple[str, str]]]) -> Policy:
    shutil.copytree(POLICIES, root, ignore=shutil.ignore_patterns("scenarios"))
    for name, changes in edits.items():
        path = root / name
        text = path.read_text()
        for old, new in changes:
            assert text.count(old) == 1, (name, old)
            text = text.replace(old, new)
        path.write_text(text)
    return load_bundle(root)


def test_a_stops_row_keeps_apart_the_agreements_two_reasons_are_from() -> None:
    """Two agreements reach one hub: the row named one agreement and the other's reason, and
    the reasons of both were counted as one row."""
    shared = Decided(True, "shared", None, "sandwell-early-help", frozenset({"subject.name"}))
    before = {("t", "e1", "cog-tipton"): shared, ("t", "e2", "cog-tipton"): shared}
    after = {
        ("t", "e1", "cog-tipton"): Decided(False, "not_shared", "condition-false",
                                           "wolverhampton-early-help", frozenset()),
        ("t", "e2", "cog-tipton"): Decided(False, "not_shared", "condition-false",
                                           "sandwell-early-help", frozenset()),
    }  # fmt: skip
    impact = compare(before, after, versions=("v1", "v2"))
    assert impact.rows == [
        ImpactRow("stops", "sandwell-early-help", "cog-tipton", "condition-false", 1,
                  "sandwell-early-help"),
        ImpactRow("stops", "sandwell-early-help", "cog-tipton", "condition-false", 1,
                  "wolverhampton-early-help"),
    ]  # fmt: skip
    assert [r.reason_said() for r in impact.rows] == [
        "condition-false", "condition-false (wolverhampton-early-help)",
    ]  # fmt: skip
    assert impact.as_json()["changes"][1] == {
        "change": "stops", "agreement": "sandwell-early-help", "recipient": "cog-tipton",
        "reason": "condition-false", "reason_agreement": "wolverhampton-early-help", "events": 1,
    }  # fmt: skip


def test_a_clause_narrowed_names_the_agreement_whose_clause_now_says_no(
    impact_keys: FileKeyStore, project_policy: Policy, tmp_path: Path
) -> None:
    """The lead's draft: police.child_concern out of police-to-cog. A Tipton child concern
    with consent given stops reaching its hub; the row's reason is from whichever clause the
    new decision names, with that clause's agreement beside it."""
    draft = _edited(tmp_path / "draft", {"agreements/sandwell-early-help.yaml": [(
        "  - id: police-to-cog\n    from: [wmp]\n    event_types: [police.domestic_incident, "
        "police.child_concern]",
        "  - id: police-to-cog\n    from: [wmp]\n    event_types: [police.domestic_incident]",
    ), ("version: 3\n", "version: 4\n")]})  # fmt: skip
    fam = SyntheticFamilies(seed=8, today=date(2026, 11, 21))
    family, postcode = fam.faker.last_name(), fam.postcode(("DY4",))
    child = fam.subject("child", family_name=family, postcode=postcode, school_urn="146201")
    parent = fam.subject("parent", family_name=family, postcode=postcode)
    r = _Records(impact_keys)
    r.consent(child["nhs_number"], "given", "2026-10-01T09:00:00Z")
    r.sealed("wmp", fam.event("police.child_concern", "wmp", subjects=[child, parent],
                              need_level=3))  # fmt: skip
    now, new = redecide([project_policy, draft], r.out, keys=impact_keys, envelope=ENVELOPE,
                        partitions=placed(r.out))  # fmt: skip
    [(key, after)] = [(k, d) for k, d in new.items() if k[2] == "cog-tipton"]
    assert now[key].shares
    assert now[key].agreement == "sandwell-early-help"
    assert not after.shares
    [row] = [x for x in compare(now, new, versions=("v1", "v2")).rows
             if x.recipient == "cog-tipton"]  # fmt: skip
    assert (row.change, row.agreement, row.reason) == ("stops", "sandwell-early-help",
                                                       after.reason)  # fmt: skip
    # The new decision's worst clause is Wolverhampton's police-to-sfh (hubs named sfh-):
    # the row read "stops sandwell-early-help cog-tipton condition-false" as if Sandwell's.
    assert (after.reason, after.agreement) == ("condition-false", "wolverhampton-early-help")
    assert row.reason_agreement == "wolverhampton-early-help"
    assert row.reason_said() == "condition-false (wolverhampton-early-help)"


@pytest.fixture
def with_housing(tmp_path: Path, impact_keys: FileKeyStore) -> Policy:
    """The project bundle with a new sender, a housing association whose eviction-risk
    contacts go to the MASH in safeguarding cases; its keys made."""
    impact_keys.ensure_party(HOUSING)
    return _edited(tmp_path / "with-housing", {
        "parties.yaml": [("  wmp:\n    name: West Midlands Police\n    kind: agency\n",
                          "  wmp:\n    name: West Midlands Police\n    kind: agency\n"
                          f"  {HOUSING}:\n    name: WM Housing Association\n    kind: agency\n")],
        "agreements/wolverhampton-mash.yaml": [
            ("  - id: partners-to-mash-safeguarding\n    from: [rwt,",
             f"  - id: partners-to-mash-safeguarding\n    from: [{HOUSING}, rwt,"),
            ("version: 4\n", "version: 5\n"),
        ],
    })  # fmt: skip


def _eviction_risk(fam: SyntheticFamilies) -> dict[str, Any]:
    family, postcode = fam.faker.last_name(), fam.postcode(("WV10",))
    child = fam.subject("child", family_name=family, postcode=postcode)
    parent = fam.subject("parent", family_name=family, postcode=postcode)
    return fam.event("housing.eviction_risk", HOUSING, subjects=[child, parent], need_level=4)


def test_a_new_senders_events_start_sharing_refused_under_the_bundle_in_force(
    impact_keys: FileKeyStore, project_policy: Policy, with_housing: Policy
) -> None:
    """Today's worker refuses a sender its bundle does not know (unknown-sender): no share
    now, and not "not-a-candidate", which reads as considered and passed over."""
    r = _Records(impact_keys)
    r.sealed(HOUSING, _eviction_risk(SyntheticFamilies(seed=5, today=date(2026, 11, 21))))
    now, new = redecide([project_policy, with_housing], r.out, keys=impact_keys,
                        envelope=ENVELOPE, partitions=placed(r.out))  # fmt: skip
    impact = compare(now, new, versions=("v1", "v2"))
    assert impact.rows == [
        ImpactRow("starts", "wolverhampton-mash", "wolverhampton-mash", "unknown-sender", 1)
    ]
    assert all(not d.shares and d.reason == "unknown-sender" for d in now.values())
    # The other way round: the draft that drops the sender stops it, for the same reason.
    back = compare(new, now, versions=("v2", "v1"))
    assert [(x.change, x.reason) for x in back.rows] == [("stops", "unknown-sender")]
