"""The wire contracts every side shares, and their validation.

Contact events (v1) and consent records come from agencies; deliveries and consent-withdrawal
notices go from the broker to recipients; access acknowledgements come back. The worker, the
SDK and the desk all import these from here, never from each other.

``parse_event(data, now=...)`` is the one way in: it validates bytes or a dict against the
injected clock and raises ``broker.errors.EventInvalid`` naming each bad field (never its
value). ``FIELD_PATHS`` is the closed set of field paths policies may name.
"""

from broker.events._consent import ConsentRecord, ConsentState, ConsentSubject, normalise_name
from broker.events._identifiers import (
    holds_nhs_or_telephone_number,
    is_valid_nhs_number,
    normalise_nhs_number,
    normalise_postcode,
    postcode_district,
    postcode_sector,
)
from broker.events._messages import AccessAck, Delivery, WithdrawalNotice
from broker.events._model import (
    ALWAYS_TRAVELS,
    CLOCK_SKEW,
    EVENT_FIELD_PATHS,
    EVENT_TYPES,
    FIELD_PATHS,
    REFERRAL_OUTCOMES,
    ROLES,
    SUBJECT_FIELD_PATHS,
    ContactEvent,
    EventType,
    ReferralOutcome,
    Role,
    Safeguarding,
    Subject,
    is_canonical_uuid,
)
from broker.events._parse import (
    DUPLICATE_KEY,
    near_field,
    no_duplicate_keys,
    parse_consent,
    parse_consents,
    parse_event,
)

__all__ = [
    "ALWAYS_TRAVELS",
    "CLOCK_SKEW",
    "DUPLICATE_KEY",
    "EVENT_FIELD_PATHS",
    "EVENT_TYPES",
    "FIELD_PATHS",
    "REFERRAL_OUTCOMES",
    "ROLES",
    "SUBJECT_FIELD_PATHS",
    "AccessAck",
    "ConsentRecord",
    "ConsentState",
    "ConsentSubject",
    "ContactEvent",
    "Delivery",
    "EventType",
    "ReferralOutcome",
    "Role",
    "Safeguarding",
    "Subject",
    "WithdrawalNotice",
    "holds_nhs_or_telephone_number",
    "is_canonical_uuid",
    "is_valid_nhs_number",
    "near_field",
    "no_duplicate_keys",
    "normalise_name",
    "normalise_nhs_number",
    "normalise_postcode",
    "parse_consent",
    "parse_consents",
    "parse_event",
    "postcode_district",
    "postcode_sector",
]
