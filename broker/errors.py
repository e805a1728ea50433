"""Every error Accord raises on purpose, in one place.

Lower libraries' exceptions (aiokafka, cryptography, pydantic, yaml) are translated into
these at the boundary where they occur, so callers never need to import a dependency to
handle a failure. No message here ever contains personal data: errors name fields, party
ids, key ids and file locations, never values taken from an event.

The hierarchy::

    AccordError
    ├── UsageError                 a user's mistake at the CLI: one line, exit 2
    ├── ConfigError                settings that cannot be used
    │   └── SecondFactorUnreadable an account's sealed TOTP secret does not open
    ├── SignInFailed               an officer's sign-in failed; the same words whatever was wrong
    ├── AlreadySettled             a decision about flags another decision settled first
    ├── StoreBusy                  a desk's database held by another writer: nothing recorded
    ├── StoreUnavailable           a desk's database cannot be reached (connected again next use)
    ├── RecordedAlready            a sent event is recorded as a decision already
    ├── EventInvalid               a contact event or consent record fails validation
    ├── PolicyError
    │   ├── BundleInvalid          a policy bundle has problems (every one listed)
    │   └── ScenarioInvalid        a scenario file cannot be read
    ├── KeyStoreError              keystore management: missing store, bad passphrase, ...
    │   ├── KeyNotFound
    │   └── RecordKeyUnavailable   a delivered record this keystore's keys cannot open: held
    ├── EnvelopeError              opening or sealing failed; oracle-safe: fixed messages,
    │   │                          nothing about keys or plaintext
    │   ├── MalformedEnvelope      truncated or undecodable bytes
    │   ├── UnsupportedVersion     a wire-format version this build does not speak
    │   ├── KeyRejected            unknown, revoked or expired key
    │   ├── WrongRecipient         sealed to someone else
    │   ├── BadSignature           the sender's signature does not verify
    │   ├── TamperedEnvelope       authentication failed: header, associated data or ciphertext
    │   │   └── DekUnopenable      a validly signed data key that does not open: sealer's fault
    │   └── ReplayDetected         an event id seen before
    ├── TransportError             Kafka could not be reached or refused a request
    │   ├── Fenced                 a newer producer took over this transactional id
    │   ├── SendUnconfirmed        a send given up on that Kafka may still have written
    │   └── DevKafkaError          the embedded broker cannot be fetched, started or stopped
    └── AuditError
        ├── ChainBroken            the tamper-evident log does not verify
        └── IndexUnavailable       the audit index's database cannot be reached (connected
                                   again next use)
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AccordError",
    "AlreadySettled",
    "AuditError",
    "BadSignature",
    "BundleInvalid",
    "ChainBroken",
    "ConfigError",
    "DekUnopenable",
    "DevKafkaError",
    "EnvelopeError",
    "EventInvalid",
    "Fenced",
    "IndexUnavailable",
    "KeyNotFound",
    "KeyRejected",
    "KeyStoreError",
    "MalformedEnvelope",
    "PolicyError",
    "RecordKeyUnavailable",
    "RecordedAlready",
    "ReplayDetected",
    "ScenarioInvalid",
    "SecondFactorUnreadable",
    "SendUnconfirmed",
    "SignInFailed",
    "StoreBusy",
    "StoreUnavailable",
    "TamperedEnvelope",
    "TransportError",
    "UnsupportedVersion",
    "UsageError",
    "WrongRecipient",
]


def _remade(cls: type[BaseException], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``cls(*args, **kwargs)``: how pickle remakes an error whose ``__init__`` is not
    ``Exception``'s (policy impact's process pool sends a child's error back pickled)."""
    return cls(*args, **kwargs)


class AccordError(Exception):
    """Base of every error Accord raises deliberately.

    A subclass with its own ``__init__`` defines ``__reduce__`` too: pickle and copy would
    otherwise call it with the message alone (``self.args``), and fail or garble it.
    """

    exit_code: int = 1


class UsageError(AccordError):
    """The user asked for something that cannot be done as asked."""

    exit_code = 2


class ConfigError(AccordError):
    """Configuration is missing or inconsistent."""

    exit_code = 2


class SecondFactorUnreadable(ConfigError):
    """An account's sealed TOTP secret does not open with its owner's keystore.

    Raised only to whoever gave the account's right password; the message names the users
    file and the account, never the secret.
    """

    def __init__(self, message: str, *, path: str, account: str) -> None:
        super().__init__(message)
        self.path = path
        self.account = account

    def __reduce__(self) -> tuple[Any, ...]:
        kwargs = {"path": self.path, "account": self.account}
        return _remade, (type(self), self.args, kwargs), self.__dict__


class SignInFailed(AccordError):
    """An officer could not be signed in (the message never says which part was wrong)."""


class StoreBusy(AccordError):
    """A decision was not recorded: another writer held the desk's database longer than the
    desk waits (another desk process stalled mid-decision, a long read on SQLite without
    WAL). Nothing was recorded; the same decision may be tried again."""

    def __init__(self) -> None:
        super().__init__("the database is busy; nothing was recorded")

    def __reduce__(self) -> tuple[Any, ...]:
        return _remade, (type(self), (), {}), self.__dict__


class StoreUnavailable(AccordError):
    """A desk's database could not be reached (PostgreSQL restarting, the network between):
    what was being done may not have been recorded. The next use connects again."""

    def __init__(self, where: str, why: str | None = None) -> None:
        # ``why``: our own words for the last failed attempt to connect (never the driver's).
        super().__init__(f"{where} cannot be reached" + (f" ({why})" if why else ""))
        self.where = where
        self.why = why

    def __reduce__(self) -> tuple[Any, ...]:
        return _remade, (type(self), (self.where, self.why), {}), self.__dict__


class AlreadySettled(AccordError):
    """A decision was not recorded: another decision (another tab, a colleague, another desk
    process on the same store) settled one of its flags first. ``flag_ids``: those flags
    (random ids, never personal data)."""

    def __init__(self, flag_ids: tuple[str, ...]) -> None:
        super().__init__(f"{len(flag_ids)} flag(s) settled by another decision first")
        self.flag_ids = flag_ids

    def __reduce__(self) -> tuple[Any, ...]:
        return _remade, (type(self), (self.flag_ids,), {}), self.__dict__


class RecordedAlready(AccordError):
    """A sent event was not recorded as a decision: one is recorded under its event id
    already (a second press of Record it, another desk process, the desk's own retry).
    ``event_id``: that event's id (a random id, never personal data)."""

    def __init__(self, event_id: str) -> None:
        super().__init__(f"event {event_id} is recorded already")
        self.event_id = event_id

    def __reduce__(self) -> tuple[Any, ...]:
        return _remade, (type(self), (self.event_id,), {}), self.__dict__


class EventInvalid(AccordError):
    """A contact event (or consent record) failed validation.

    ``problems`` holds ``(field path, message)`` pairs; messages never quote the value.
    ``what`` is what failed, for the message ("invalid consent record: ...").
    ``more`` counts problems found but not listed (a long batch lists its first ones only).
    """

    def __init__(
        self, problems: list[tuple[str, str]], *, what: str = "event", more: int = 0
    ) -> None:
        self.problems = problems
        self.what = what
        self.more = more
        first = "; ".join(f"{path}: {msg}" for path, msg in problems[:3])
        unshown = len(problems) - min(len(problems), 3) + more
        tail = f" (+{unshown} more)" if unshown else ""
        super().__init__(f"invalid {what}: {first}{tail}")

    def __reduce__(self) -> tuple[Any, ...]:
        kwargs = {"what": self.what, "more": self.more}
        return _remade, (type(self), (self.problems,), kwargs), self.__dict__


class PolicyError(AccordError):
    """Base for policy bundle and scenario problems."""


class BundleInvalid(PolicyError):
    """A policy bundle failed its checks; ``problems`` lists each as ``file: location: what``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            problems[0] if len(problems) == 1 else f"{len(problems)} problems: {problems[0]} ..."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return _remade, (type(self), (self.problems,), {}), self.__dict__


class ScenarioInvalid(PolicyError):
    """A scenario file is not in the scenario format."""


class KeyStoreError(AccordError):
    """The keystore cannot do what was asked (missing, locked, wrong passphrase)."""


class KeyNotFound(KeyStoreError):
    """No key with that id or for that party."""


class RecordKeyUnavailable(KeyStoreError):
    """A delivered record cannot be opened with the keys this keystore holds: the reader
    stops on it rather than go past it (``broker.sdk.Subscriber``). Names the record's place
    and the key, never anything inside the record."""

    def __init__(
        self, message: str, *, topic: str, partition: int, offset: int, key_id: str
    ) -> None:
        super().__init__(message)
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key_id = key_id

    def __reduce__(self) -> tuple[Any, ...]:
        where = {"topic": self.topic, "partition": self.partition, "offset": self.offset}
        kwargs = {**where, "key_id": self.key_id}
        return _remade, (type(self), self.args, kwargs), self.__dict__


class EnvelopeError(AccordError):
    """Sealing or opening an envelope failed.

    Subclasses carry fixed messages only: an error must not become an oracle that reveals
    anything about keys or plaintext.
    """

    reason: str = "envelope"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__class__.__doc__ or self.reason)


class MalformedEnvelope(EnvelopeError):
    """The envelope is truncated or cannot be decoded."""

    reason = "malformed"


class UnsupportedVersion(EnvelopeError):
    """The envelope uses a wire-format version this build does not support."""

    reason = "unsupported-version"


class KeyRejected(EnvelopeError):
    """The envelope names a key that is unknown, revoked or expired."""

    reason = "key-rejected"


class WrongRecipient(EnvelopeError):
    """The envelope is sealed to a different recipient."""

    reason = "wrong-recipient"


class BadSignature(EnvelopeError):
    """The sender's signature does not verify."""

    reason = "bad-signature"


class TamperedEnvelope(EnvelopeError):
    """Authentication failed: the header, associated data or ciphertext was altered."""

    reason = "tampered"


class DekUnopenable(TamperedEnvelope):
    """The data key's bundle is validly signed but its sealed key does not open."""

    # Its own reason is safe where a general "cannot decrypt" oracle would not be: only a
    # bundle whose signature verified under the sender's live key gets this far, and any
    # change to the signed bytes fails that check first, so no one but the authenticated
    # sender can choose what reaches this check; it is its own sealing fault (wrong key,
    # wrong HPKE info), or the receiver holds the wrong private key for its key id. The
    # reason reaches operators only, never the sender; the message is fixed.
    reason = "dek-unopenable"


class ReplayDetected(EnvelopeError):
    """An event id that was already processed."""

    reason = "replay"


class TransportError(AccordError):
    """Kafka could not be reached or refused a request."""


class Fenced(TransportError):
    """A newer producer with the same transactional id took over; this one must stop writing."""


class SendUnconfirmed(TransportError):
    """A send given up on after Kafka may have taken it (a transaction's commit under way, or
    a request already sent): it may have been written. Check before sending it again, or
    send it again under the same event id (a copy is then refused as a replay).

    ``event_ids`` names the records given up on by their envelope ids (random UUIDs, never
    personal data): a consent record's is the ``record_id`` to send it again under.
    """

    def __init__(self, message: str, *, event_ids: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.event_ids = event_ids

    def __reduce__(self) -> tuple[Any, ...]:
        kwargs = {"event_ids": self.event_ids}
        return _remade, (type(self), self.args, kwargs), self.__dict__


class DevKafkaError(TransportError):
    """The embedded Apache Kafka could not be fetched, started or stopped."""


class AuditError(AccordError):
    """Base for audit log problems."""


class ChainBroken(AuditError):
    """The hash chain or a checkpoint signature does not verify at ``seq`` (of ``chain``)."""

    def __init__(self, seq: int, what: str, *, chain: str | None = None) -> None:
        self.seq = seq
        self.what = what
        self.chain = chain
        where = f"audit chain {chain!r}" if chain else "audit chain"
        super().__init__(f"{where} broken at seq {seq}: {what}")

    def __reduce__(self) -> tuple[Any, ...]:
        kwargs = {"chain": self.chain}
        return _remade, (type(self), (self.seq, self.what), kwargs), self.__dict__


class IndexUnavailable(AuditError):
    """The audit index's database could not be reached (PostgreSQL restarting, the network
    between): the call failed; a write in it was rolled back, or, if the connection was lost
    as it committed, may have been kept (an indexer reads what is stored before going on).
    The next use connects again."""

    def __init__(self, where: str, why: str | None = None) -> None:
        # ``why``: our own words (``why_not_connected``), never the driver's text.
        super().__init__(
            f"the audit index at {where} cannot be reached ({why or 'the connection was lost'})"
        )
        self.where = where
        self.why = why

    def __reduce__(self) -> tuple[Any, ...]:
        return _remade, (type(self), (self.where, self.why), {}), self.__dict__
