"""Sending a referral or an outcome again under the event id of the attempt given up on.

An attempt the broker did not confirm (``SendUnconfirmed``) may have been written; one it
refused in time was not. Either way the page that says so carries the attempt's event id
back in its re-send form, so the second attempt is the same event, not a new one: if the
first did arrive, the worker refuses the copy as a replay, and the recipient gets one
referral, not two.

The same event id must mean the same content: the worker drops the copy, so the recipient
keeps the first attempt's, and a decision the desk stored from different words would not be
what was sent. So the token's MAC covers what the form sends as well as the id (``fields``:
the decision or outcome, the reason or summary, the flags it settles), and the form that
carries it shows them but lets nobody change them (``not_sent.html``: hidden fields). A form
posted with anything changed is refused, not sent as a new attempt under the old id.

The id is a hidden field a person could change, so it is taken only with this desk's MAC
over it, the party, the form and the user (``device_key``, under a label of its own): a
posted id is always one this desk made for this person's form, never one read off another
page (a referral's id, shown to the hub that received it, is not this desk's to reuse).
Even without the MAC an id could overwrite no one's event: it goes only to this party's
own ingress topic, under this party's signature, where the worker's replay guard (kept per
partition of that topic) refuses an id already taken and nothing reads another party's.

A referral or outcome that was sent but not recorded (the desk's database busy) is not sent
again: its page's button records it, nothing more. Its token (the form's ``record`` field) is
made under a label of its own, so that no re-send token can pass for one (a re-send's event
may never have gone, and recording it would say it had) and no record token can send. It
covers when the event was sent (the ``sent`` field), which the decision is recorded at.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

__all__ = [
    "altered",
    "not_again",
    "record_altered",
    "record_lost",
    "record_token",
    "recorded_id",
    "resend_lost",
    "resend_stale_note",
    "resend_token",
    "resent_id",
    "sent_field",
]

# v2: the MAC covers the form's content too. A v1 token (a page drawn before the upgrade) is
# refused like any other this desk did not make.
_LABEL = b"accord-desk-resend-v2\0"
# A token that records an event sent already, and sends nothing. v2: it covers when the event
# was sent (its occurred_at), which the decision is recorded at.
_RECORD_LABEL = b"accord-desk-record-v2\0"

#: Who receives each kind of send, where the desk would list it once sent, and the page it
#: is sent from.
_SENT_TO = {
    "referral": ("the hub", "It is not listed under Referrals sent.", "the child's page"),
    "outcome": (
        "the co-ordinating team",
        "It is not recorded here as the referral's outcome.",
        "the referral's page",
    ),
}


def _digest(fields: Iterable[tuple[str, str]]) -> str:
    # Order-free (a browser posts a form's fields in document order, which is not ours to
    # promise) and blind to line endings (a page's CR LF is read as LF, and a browser posts
    # every line break as CR LF, whatever the page held).
    canonical = sorted(
        (name, value.replace("\r\n", "\n").replace("\r", "\n")) for name, value in fields
    )
    return hashlib.sha256(json.dumps(canonical).encode()).hexdigest()


def _mac(
    key: bytes, *, party: str, form: str, user: str, event_id: str,
    fields: Iterable[tuple[str, str]], label: bytes = _LABEL,
) -> str:  # fmt: skip
    message = label + "\0".join((party, form, user, event_id, _digest(fields))).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def resend_token(
    key: bytes, *, party: str, form: str, user: str, event_id: str,
    fields: Iterable[tuple[str, str]],
) -> str:  # fmt: skip
    """The hidden ``resend`` field's value for a re-send of ``event_id`` on ``form`` (the
    form's address) by ``user``, sending ``fields`` (name, value) and nothing else."""
    mac = _mac(key, party=party, form=form, user=user, event_id=event_id, fields=fields)
    return f"{event_id}.{mac}"


def resent_id(
    key: bytes, token: str | None, *, party: str, form: str, user: str,
    fields: Iterable[tuple[str, str]],
) -> str | None:  # fmt: skip
    """The event id a posted ``resend`` field carries, if it is one this desk made for this
    form, user and content (``fields`` as posted); None for anything else (the caller
    refuses the form)."""
    return _checked(key, token, party=party, form=form, user=user, fields=fields, label=_LABEL)


def record_token(
    key: bytes, *, party: str, form: str, user: str, event_id: str,
    fields: Iterable[tuple[str, str]], sent_at: datetime,
) -> str:  # fmt: skip
    """The hidden ``record`` field's value on a sent-but-not-recorded page: it records
    ``event_id``, sent already with ``fields`` at ``sent_at``, as sent from ``form`` by
    ``user``. ``sent_at`` travels beside it in the ``sent`` field (:func:`sent_field`)."""
    mac = _mac(
        key, party=party, form=form, user=user, event_id=event_id,
        fields=[*fields, ("sent", sent_field(sent_at))], label=_RECORD_LABEL,
    )  # fmt: skip
    return f"{event_id}.{mac}"


def sent_field(sent_at: datetime) -> str:
    """The ``sent`` field's value: when the event was sent, as its occurred_at says it."""
    return sent_at.astimezone(UTC).isoformat()


def recorded_id(
    key: bytes, token: str | None, *, party: str, form: str, user: str,
    fields: Iterable[tuple[str, str]], sent: str | None,
) -> tuple[str, datetime] | None:  # fmt: skip
    """The event id a posted ``record`` field carries and when it was sent (the posted
    ``sent`` field), if this desk made them for this form, user and content, the event
    having been sent; None for anything else, a re-send's token included."""
    try:
        sent_at = datetime.fromisoformat(sent or "")
    except ValueError:
        return None
    if sent_at.tzinfo is None or sent_field(sent_at) != sent:
        return None
    event_id = _checked(
        key, token, party=party, form=form, user=user, fields=[*fields, ("sent", sent)],
        label=_RECORD_LABEL,
    )  # fmt: skip
    return None if event_id is None else (event_id, sent_at)


def _checked(
    key: bytes, token: str | None, *, party: str, form: str, user: str,
    fields: Iterable[tuple[str, str]], label: bytes,
) -> str | None:  # fmt: skip
    event_id, _, mac = (token or "").partition(".")
    try:
        if str(uuid.UUID(event_id)) != event_id:  # the canonical form only
            return None
    except ValueError:
        return None
    expected = _mac(
        key, party=party, form=form, user=user, event_id=event_id, fields=fields, label=label
    )
    return event_id if hmac.compare_digest(mac, expected) else None


def not_again(event_id: str, why: str, *, what: str = "referral") -> str:
    """What a re-send refused is said to be: never "nothing was sent", since the attempt it
    repeats may have been (the desk cannot tell an unconfirmed attempt from a refused one by
    its form), and never recorded as sent, since it may not have been. ``what``: "referral"
    or "outcome"."""
    to, unlisted, _ = _SENT_TO[what]
    return (
        f"The {what} could not be sent again: {why}. Nothing more was sent. The earlier "
        f"attempt, event {event_id}, may have reached {to} if the broker did not confirm "
        f"it: ask {to} whether it arrived. {unlisted}"
    )


def altered(what: str) -> str:
    """What a re-send form posted with its token or its content changed is told: it is not
    sent, neither as the same attempt (that id would carry other words) nor as a new one
    (the person meant the earlier attempt)."""
    to, _, page = _SENT_TO[what]
    return (
        f"This form cannot send the {what} again: it was changed after this desk drew it, or "
        f"this desk did not draw it for you (or an earlier release of the desk did). Nothing "
        f"was sent. To send a {what} afresh, start again from {page}, but first ask {to} "
        "whether the earlier attempt arrived."
    )


def record_altered(what: str) -> str:
    """What a sent-but-not-recorded page's form posted changed (or not drawn for this person)
    is told: nothing is recorded from it, and its event is not denied."""
    to, unlisted, _ = _SENT_TO[what]
    return (
        f"This form cannot record the {what}: it was changed after this desk drew it, or this "
        f"desk did not draw it for you. Nothing was recorded or sent just now. {unlisted} Do "
        f"not start a new {what} to replace the one that page said was sent: ask {to} about it."
    )


def record_lost(event_id: str, what: str) -> str:
    """What the session-timeout warning adds on a sent-but-not-recorded page."""
    return (
        f"This desk keeps trying to record it by itself for 10 minutes. If you are signed "
        f"out, keep this page open: sign in again in another tab, then press “Record it” here. "
        f"The {what} was sent (event {event_id}): do not start a new one, which would be a "
        "second."
    )


def resend_lost(event_id: str, what: str, *, maybe_sent: bool = True, button: bool = True) -> str:
    """What the session-timeout warning adds on a not-sent page: the re-send is on this page
    only. ``maybe_sent``: the attempt may have arrived (the broker did not confirm it, or the
    page is a re-send refused, whose earlier attempt may not have been confirmed either), so
    a new attempt would be a second event; False on a page whose attempt the broker refused
    in time, which is safe to send again. ``button``: False on a page with no re-send (nothing
    will let it go from here), which is kept for what it says of the attempt."""
    to = _SENT_TO[what][0]
    keep = (
        f"If you are signed out, keep this page open: sign in again in another tab, then press "
        f"“Send the {what} again” here."
        if button
        else f"If you are signed out, keep this page open: it says what became of the {what}."
    )
    if not maybe_sent:
        return (
            f"{keep} The {what} was not sent, so sending it again is safe: the button sends "
            f"it under the same event id ({event_id})."
        )
    return (
        f"{keep} Do not start a new {what}: the first may have arrived. Ask {to} about event "
        f"{event_id}."
    )


def resend_stale_note(token: str, what: str) -> str:
    """What the stale-form page says of a re-send it cannot draw again (another person's
    page, or one changed): never to start afresh, which would be a second event. The event
    id is said only if the posted token holds one in canonical form; it is not checked
    against anything, and names nobody."""
    to = _SENT_TO[what][0]
    event_id = token.partition(".")[0]
    try:
        named = str(uuid.UUID(event_id)) == event_id
    except ValueError:
        named = False
    about = f" about event {event_id}" if named else " whether the earlier attempt arrived"
    return f"Do not start a new {what}: the first may have arrived. Ask {to}{about}."
