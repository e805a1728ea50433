"""The public surface of broker.events is pinned: changing it is a deliberate act."""

from __future__ import annotations

import broker.events


def test_public_names() -> None:
    assert sorted(broker.events.__all__) == sorted([
        "ALWAYS_TRAVELS", "CLOCK_SKEW", "EVENT_FIELD_PATHS", "EVENT_TYPES", "FIELD_PATHS",
        "ROLES", "SUBJECT_FIELD_PATHS", "ConsentRecord", "ConsentState", "ConsentSubject",
        "ContactEvent", "EventType", "Role", "Safeguarding", "Subject", "is_valid_nhs_number",
        "normalise_name", "normalise_nhs_number", "normalise_postcode", "parse_consent",
        "parse_consents", "parse_event", "postcode_district", "postcode_sector",
    ])  # fmt: skip
    for name in broker.events.__all__:
        assert hasattr(broker.events, name)
