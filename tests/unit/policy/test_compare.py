"""``changed_without_new_version``: an agreement whose content changed but whose version did
not, so that the audit log would cite one version for two texts; compared by content, not
by the bytes of its file."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from broker.policy import Unversioned, changed_without_new_version, load_bundle
from tests.unit.policy.kit import ENCOMPASS, default_agreements, load


def _agreements(**over: Any) -> list[dict[str, Any]]:
    """The kit's agreements, the first (early-help) updated with ``over``."""
    found = default_agreements()
    found[0].update(over)
    return found


def test_a_changed_clause_at_the_same_version_is_named_with_what_changed(tmp_path: Path) -> None:
    before = load(tmp_path / "a")
    changed = _agreements()
    changed[0]["clauses"][0]["when"] = "event.need_level >= 3"
    changed[0]["title"] = "Early help, reworded"
    after = load(tmp_path / "b", agreements=changed)
    [found] = changed_without_new_version(before.bundle, after.bundle)
    assert found == Unversioned("early-help", "1", ("title", "clause police-to-coord"))
    assert found.as_json() == {
        "agreement": "early-help", "version": "1", "changed": ["title", "clause police-to-coord"],
    }  # fmt: skip
    assert found.line().startswith(
        "agreement early-help changed (title, clause police-to-coord) but is still version 1"
    )


def test_a_clause_added_or_removed_counts_and_a_new_version_clears_it(tmp_path: Path) -> None:
    before = load(tmp_path / "a")
    added = _agreements()
    added[0]["clauses"].append(copy.deepcopy(ENCOMPASS))
    after = load(tmp_path / "b", agreements=added)
    [found] = changed_without_new_version(before.bundle, after.bundle)
    assert found.changed == ("clause encompass",)
    assert changed_without_new_version(after.bundle, before.bundle)[0].changed == (
        "clause encompass",
    )
    bumped = load(tmp_path / "c", agreements=[{**added[0], "version": 2}, added[1]])
    assert changed_without_new_version(before.bundle, bumped.bundle) == []


def test_layout_comments_and_key_order_do_not_count(tmp_path: Path) -> None:
    before = load(tmp_path / "a")
    root = tmp_path / "b"
    load(root)
    path = root / "agreements" / "early-help.yaml"
    path.write_text("# reviewed 2026-12-01\n" + path.read_text().replace("\n", "\n\n"))
    after = load_bundle(root)
    assert after.version == before.version
    assert changed_without_new_version(before.bundle, after.bundle) == []


def test_status_drafts_and_the_version_s_spelling_are_not_text(tmp_path: Path) -> None:
    """Suspending an agreement changes no clause; a draft reworded as a draft decides
    nothing on either side, so the log never cites it; version 1 and "1" are cited alike."""
    before = load(tmp_path / "a")
    suspended = load(tmp_path / "b", agreements=_agreements(status="suspended", version="1"))
    assert changed_without_new_version(before.bundle, suspended.bundle) == []
    draft = load(tmp_path / "c", agreements=_agreements(status="draft"))
    reworded = _agreements(status="draft", title="Early help, draft 2")
    draft2 = load(tmp_path / "c2", agreements=reworded)
    assert changed_without_new_version(draft.bundle, draft2.bundle) == []
    assert changed_without_new_version(draft2.bundle, draft.bundle) == []
    # A new agreement, or one dropped, has no earlier text to differ from.
    alone = load(tmp_path / "d", agreements=_agreements()[:1])
    assert changed_without_new_version(before.bundle, alone.bundle) == []
    assert changed_without_new_version(alone.bundle, before.bundle) == []


def test_an_approved_text_changed_by_way_of_a_draft_is_named_on_the_way_in(
    tmp_path: Path,
) -> None:
    """Approved v1 -> a draft with new text -> approved at v1 again passed both steps: the
    log would cite v1 for two texts. A draft on one side only is compared, so the first
    step warns; the second (the draft approved as it stands) has nothing to compare."""
    v1 = load(tmp_path / "a")
    ags = default_agreements()
    ags[0]["status"] = "draft"
    ags[0]["clauses"][0]["when"] = "event.need_level >= 1"
    draft = load(tmp_path / "b", agreements=ags)
    ags[0]["status"] = "approved"
    again = load(tmp_path / "c", agreements=ags)
    for was, now in ((v1, draft), (draft, v1), (v1, again)):
        [found] = changed_without_new_version(was.bundle, now.bundle)
        assert (found.agreement, found.changed) == ("early-help", ("clause police-to-coord",))
    assert changed_without_new_version(draft.bundle, again.bundle) == []


def test_a_reordered_or_repeated_set_like_list_is_no_change(tmp_path: Path) -> None:
    """share, from, to, event_types and subjects are sets to the engine: reordering one
    warned, and --strict refused the bundle."""
    before = load(tmp_path / "a")
    ags = default_agreements()
    clause = ags[0]["clauses"][0]
    for key in ("share", "event_types"):
        assert len(clause[key]) > 1, key
        clause[key] = list(reversed(clause[key]))
    clause["to"] = [*clause["to"], *clause["to"]]
    clause["from"] = [*clause["from"], *clause["from"]]
    after = load(tmp_path / "b", agreements=ags)
    assert changed_without_new_version(before.bundle, after.bundle) == []
    # A list whose order means something still counts: the clauses' own order.
    swapped = default_agreements()
    swapped[0]["clauses"] = [*swapped[0]["clauses"], copy.deepcopy(ENCOMPASS)]
    base = load(tmp_path / "c", agreements=swapped)
    swapped[0]["clauses"].reverse()
    moved = load(tmp_path / "d", agreements=swapped)
    [found] = changed_without_new_version(base.bundle, moved.bundle)
    assert found.changed == ("clause order",)
