"""The demo's "N fields shared" counts what the child's disclosure log lists: the decision's
``fields_shared``, read back from the view the worker built, not the view's keys (one
referral read 16 fields in the demo, 9 in its log; a police record 20 against 13)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from broker.cli._demo_view import shared_fields
from broker.events import parse_consents, parse_event
from broker.policy import load_bundle, redact
from broker.sdk import Delivery
from broker.synthetic import SyntheticFamilies

OUTCOME = "coordination.referral_outcome"
POLICIES = Path(__file__).resolve().parents[3] / "policies"


def _delivered(view: dict[str, Any], d: Any) -> Delivery:
    return Delivery.model_validate({
        "kind": "delivery", "event_id": view["event_id"], "recipient": d.recipient,
        "outcome": d.outcome, "clauses": list(d.clause_ids),
        "agreements": [d.agreement_id], "purpose": d.purpose or "x",
        "lawful_basis": {}, "policy_version": "sha256:x",
        "decided_at": "2026-11-21T22:40:00Z", "view": view,
    })  # fmt: skip


@pytest.mark.parametrize("seed", range(12))
def test_the_fields_read_back_from_every_view_are_the_decision_s_fields_shared(
    seed: int,
) -> None:
    """Every event type the bundle decides, from every sender it names, to every recipient
    it shares with: transforms (age band, postcode district, initials, pseudonyms) and all."""
    policy = load_bundle(POLICIES)
    fam = SyntheticFamilies(seed=seed)
    now = datetime.now(UTC)
    checked = 0
    for a in policy.bundle.agreements:
        for c in a.clauses:
            for t in c.event_types:
                for sender in c.from_:
                    extra = (
                        {"outcome": "support_offered", "reference": "R-1"} if t == OUTCOME else {}
                    )
                    raw = fam.event(t, sender, occurred_at=now - timedelta(hours=1), **extra)
                    event = parse_event(raw, now=now)
                    consent = {"subject": {"nhs_number": raw["subjects"][0]["nhs_number"]},
                               "state": "given", "purposes": ["*"], "recipients": ["*"],
                               "recorded_by": sender,
                               "recorded_at": (now - timedelta(hours=2)).isoformat()}  # fmt: skip
                    for d in policy.decide(event, parse_consents([consent], now=now), at=now):
                        if not d.shares:
                            continue
                        view = redact(event, d, pseudonym_key=b"k" * 32)
                        got = shared_fields(_delivered(view, d), policy)
                        assert got == d.fields_shared, (t, sender, d.recipient)
                        checked += 1
    assert checked >= 10
