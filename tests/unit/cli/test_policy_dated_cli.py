"""`accord policy check` warns of an approved agreement that has lapsed and notes one not yet
begun; `accord policy explain` says why an agreement was inactive, and which hub:locality
clause found no hub when others are told."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.unit.audit.conftest import Run
from tests.unit.policy.kit import (
    HEALTH_TO_COORD,
    POLICE_TO_COORD,
    agreement,
    default_agreements,
    event_dict,
    subject,
    write_bundle,
)

AT = "2026-11-22T08:00:00Z"


def _dated(**over: str) -> list[dict[str, Any]]:
    """The kit's bundle with early-help (police and health to coord, hubs) changed."""
    agreements = default_agreements()
    agreements[0].update(over)
    return agreements


# -- check ---------------------------------------------------------------------------------


def test_check_warns_of_an_approved_agreement_that_has_lapsed_naming_file_and_agreement(
    tmp_path: Path, run_cli: Run
) -> None:
    """A lapsed approval decides nothing: it passed silently, so its authors believed it shared."""
    root = write_bundle(tmp_path / "b", agreements=_dated(valid_from="2024-01-01",
                                                          valid_until="2025-11-30"))  # fmt: skip
    code, out, err = run_cli(["policy", "check", str(root)])
    assert code == 0  # a warning never blocks
    assert out.startswith("ok: ")
    [line] = [x for x in err.splitlines() if "lapsed" in x]
    assert line.startswith("warning: agreements/early-help.yaml: agreement 'early-help' ")
    assert "2025-11-30" in line


def test_check_notes_an_approved_agreement_not_yet_begun_and_is_silent_on_one_suspended(
    tmp_path: Path, run_cli: Run
) -> None:
    """Approving ahead of the start date is usual (a note, not a warning); a suspended or
    draft agreement is inactive on purpose, whatever its dates."""
    later = agreement("later", [copy.deepcopy(HEALTH_TO_COORD) | {"id": "later-health"}],
                      valid_from="2099-01-01", valid_until="2099-12-31")  # fmt: skip
    stopped = agreement("stopped", [copy.deepcopy(POLICE_TO_COORD) | {"id": "stopped-police"}],
                        status="suspended", valid_from="2020-01-01",
                        valid_until="2021-12-31")  # fmt: skip
    drafted = agreement("drafted", [copy.deepcopy(POLICE_TO_COORD) | {"id": "drafted-police"}],
                        status="draft", valid_from="2020-01-01",
                        valid_until="2021-12-31")  # fmt: skip
    root = write_bundle(tmp_path / "b", agreements=[*default_agreements(), later, stopped,
                                                    drafted])  # fmt: skip
    code, _, err = run_cli(["policy", "check", str(root)])
    assert code == 0
    dated = [x for x in err.splitlines() if "valid_" in x]
    assert dated == [
        "note: agreements/later.yaml: agreement 'later' is approved but starts on 2099-01-01 "
        "(valid_from): it shares nothing before then"
    ]


# -- explain -------------------------------------------------------------------------------


def _explain(
    tmp_path: Path, run_cli: Run, agreements: list[dict[str, Any]],
    *extra: str, **event: Any,
) -> tuple[int, str]:  # fmt: skip
    root = write_bundle(tmp_path / "b", agreements=agreements)
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event_dict(**event)))
    argv = ["policy", "explain", str(path), "--policies", str(root), "--at", AT, *extra]
    code, out, _ = run_cli(argv)
    return code, out


@pytest.mark.parametrize(
    ("over", "why"),
    [
        ({"valid_from": "2024-01-01", "valid_until": "2025-11-30"}, "lapsed 2025-11-30"),
        ({"valid_from": "2027-01-01", "valid_until": "2028-12-31"}, "starts 2027-01-01"),
        ({"status": "suspended"}, "suspended"),
    ],
)
def test_explain_says_why_an_agreement_was_inactive(
    tmp_path: Path, run_cli: Run, over: dict[str, str], why: str
) -> None:
    """``agreement-inactive`` alone: a lapse, a suspension and a future start are fixed in
    different places."""
    code, out = _explain(tmp_path, run_cli, _dated(**over))
    assert code == 0
    assert f"agreement-inactive ({why})" in out
    code, out = _explain(tmp_path, run_cli, _dated(**over), "--json")
    [coord] = [d for d in json.loads(out)["decisions"] if d["recipient"] == "coord"]
    assert (coord["reason"], coord["inactive"]) == ("agreement-inactive", why)


def test_explain_names_a_hub_locality_clause_that_found_no_hub_while_others_are_told(
    tmp_path: Path, run_cli: Run
) -> None:
    """The coord and the school are told, and no hub covers the child's postcode: explain
    said nothing of the hub clause. The line gives the district, never the whole postcode."""
    child = subject("child", postcode="B1 1AA")
    code, out = _explain(tmp_path, run_cli, default_agreements(), subjects=[child])
    assert code == 0
    assert "coord" in out
    assert "school-a" in out
    [line] = [x for x in out.splitlines() if "no hub" in x]
    assert line == "clause to-hub (early-help): no hub covers postcode district B1"
    code, out = _explain(tmp_path, run_cli, default_agreements(), "--json", subjects=[child])
    assert json.loads(out)["no_hub"] == [{
        "agreement_id": "early-help", "clause_id": "to-hub", "selector": "hub:locality",
        "postcode_districts": ["B1"],
    }]  # fmt: skip


def test_explain_says_nothing_of_hubs_when_one_covers_the_postcode(
    tmp_path: Path, run_cli: Run
) -> None:
    code, out = _explain(tmp_path, run_cli, default_agreements())
    assert code == 0
    assert "hub-tipton" in out
    assert "no hub" not in out
    code, out = _explain(tmp_path, run_cli, default_agreements(), "--json")
    assert json.loads(out)["no_hub"] == []
