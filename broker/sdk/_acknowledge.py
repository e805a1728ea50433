"""Access acknowledgements: what a recipient tells the broker when a person opens a record,
built and sealed to the broker (sent by :class:`broker.sdk.Subscriber`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from pydantic import ValidationError

from broker._canonical import canonical_json
from broker.envelope import Sealer
from broker.errors import UsageError
from broker.events import AccessAck
from broker.principals import Principal
from broker.sdk._bounded import Outgoing
from broker.topics import ACCESS, SCHEMA_ACCESS


def access_ack(event_id: str, *, recipient: str, by: str, purpose: str, at: datetime) -> AccessAck:
    """The acknowledgement, or ``UsageError`` naming what the caller got wrong (never the
    values: ``by`` may be a person's name typed where an id belongs)."""
    try:
        return AccessAck(event_id=event_id, recipient=recipient, by=by, purpose=purpose, at=at)
    except ValidationError as exc:
        errors = exc.errors(include_input=False)
        fields = sorted({str(e["loc"][0]) for e in errors})
        if "at" in fields:
            raise UsageError("the subscriber's clock must give timezone-aware times") from None
        if any(e["loc"][0] == "by" and e["type"] == "value_error" for e in errors):
            raise UsageError(
                "by: a staff or system id, never an NHS or telephone number (the audit log "
                "names who opened a record to every child's subject access request)"
            ) from None
        if any(e["loc"][0] == "purpose" and e["type"] == "value_error" for e in errors):
            raise UsageError(
                "purpose: the purpose the record was shared for, never an NHS or telephone "
                "number (the child's subject access request shows it)"
            ) from None
        raise UsageError(
            f"{' and '.join(fields)}: an identifier, not free text (event_id: the delivered "
            "record's UUID; by and purpose: letters, digits, . _ / -)"
        ) from None


def sealed_acks(sealer: Sealer, acks: Sequence[AccessAck]) -> list[Outgoing]:
    """``acks`` sealed to the broker for the access topic, each under an event id of its own."""
    outgoing = []
    for ack in acks:
        ack_id = str(uuid.uuid4())
        sealed = sealer.seal(
            canonical_json(ack.model_dump(mode="json")),
            event_id=ack_id,
            recipient=Principal.WORKER,
            schema=SCHEMA_ACCESS,
            topic=ACCESS,
        )
        outgoing.append(
            Outgoing(ACCESS, ack_id.encode("ascii"), sealed.value, list(sealed.headers))
        )
    return outgoing
