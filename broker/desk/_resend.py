"""Sending a referral or an outcome again under the event id of the attempt given up on.

An attempt the broker did not confirm (``SendUnconfirmed``) may have been written; one it
refused in time was not. Either way the page that says so carries the attempt's event id
back in its re-send form, so the second attempt is the same event, not a new one: if the
first did arrive, the worker refuses the copy as a replay, and the recipient gets one
referral, not two.

The id is a hidden field a person could change, so it is taken only with this desk's MAC
over it, the party, the form and the user (``device_key``, under a label of its own): a
posted id is always one this desk made for this person's form, never one read off another
page (a referral's id, shown to the hub that received it, is not this desk's to reuse).
Even without the MAC an id could overwrite no one's event: it goes only to this party's
own ingress topic, under this party's signature, where the worker's replay guard (kept per
partition of that topic) refuses an id already taken and nothing reads another party's.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid

__all__ = ["not_again", "resend_token", "resent_id"]

_LABEL = b"accord-desk-resend-v1\0"


def _mac(key: bytes, party: str, form: str, user: str, event_id: str) -> str:
    message = _LABEL + "\0".join((party, form, user, event_id)).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def resend_token(key: bytes, *, party: str, form: str, user: str, event_id: str) -> str:
    """The hidden ``resend`` field's value for a re-send of ``event_id`` on ``form`` (the
    form's address) by ``user``."""
    return f"{event_id}.{_mac(key, party, form, user, event_id)}"


def resent_id(key: bytes, token: str | None, *, party: str, form: str, user: str) -> str | None:
    """The event id a posted ``resend`` field carries, if it is one this desk made for this
    form and user; None for anything else (the caller refuses the form)."""
    event_id, _, mac = (token or "").partition(".")
    try:
        if str(uuid.UUID(event_id)) != event_id:  # the canonical form only
            return None
    except ValueError:
        return None
    expected = _mac(key, party, form, user, event_id)
    return event_id if hmac.compare_digest(mac, expected) else None


def not_again(event_id: str, why: str) -> str:
    """What a re-send refused is said to be: never "nothing was sent", since the attempt it
    repeats may have been (the desk cannot tell an unconfirmed attempt from a refused one by
    its form), and never recorded as sent, since it may not have been."""
    return (
        f"The referral could not be sent again: {why}. Nothing more was sent. The earlier "
        f"attempt, event {event_id}, may have reached the hub if the broker did not confirm "
        "it: ask the hub whether it arrived. It is not listed under Referrals sent."
    )
