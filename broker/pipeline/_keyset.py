"""The worker's keystore as its audit log records it: ``keys_loaded`` records.

After a keystore is stolen, the security officer must be able to show from the log itself
when each worker took the directory that revoked the stolen keys, and what it changed. The
worker writes, on every chain it holds (as it writes ``policy_loaded``):

* at a chain's opening (its start, a rebalance): the directory's serial, the governance key
  that signed it when the keystore knows it, and counts: a full list of every party's key
  ids would be most of a record for nothing the counts do not say;
* whenever its keystore changes while it runs (an imported directory, a local rotation or
  revocation, ``_keywatch``): the same, and which keys were added, revoked, retired,
  expired or dropped since the last it looked at, as party ids and key ids.

Never key material: a key id is a fingerprint of a public key (envelope §3), and nothing
here reads a key's bytes (schemas/audit-chain.md, ``keys_loaded``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

from broker.audit import AuditKind
from broker.envelope import KeyInfo, KeyStatus
from broker.errors import KeyStoreError
from broker.keys import FileKeyStore, imported_directory
from broker.pipeline._effects import Audit

if TYPE_CHECKING:
    from broker.pipeline._effects import OutRecord
    from broker.pipeline._processor import Processor

#: (party, key id, status, expiry): what of a key the record may name or count.
_Entry = tuple[str, str, KeyStatus, datetime | None]


@runtime_checkable
class _Listed(Protocol):
    """A keystore that lists its keys, reads them again on demand and has a directory
    (``FileKeyStore``; a test's wrapper of one); a bare ``KeyResolver`` is none of these,
    and is recorded as nothing."""

    path: Path

    def keys(self, party: str | None = None) -> list[KeyInfo]: ...

    def refresh(self) -> None: ...


@dataclass(frozen=True)
class KeySet:
    """The keystore at one moment, ids and statuses only."""

    at: datetime
    serial: int  # the last signed directory taken; 0: none yet (keys made here only)
    signer: str | None  # the governance key that signed it, if the store kept it
    entries: frozenset[_Entry]

    def same_keys(self, other: KeySet) -> bool:
        """Nothing in the store changed (an expiry passing is not a change to the store)."""
        return (self.serial, self.signer, self.entries) == (other.serial, other.signer,
                                                             other.entries)  # fmt: skip

    def counts(self) -> dict[str, int]:
        out = {"live": 0, "expired": 0, "retired": 0, "revoked": 0}
        for entry in self.entries:
            out[_state(entry, self.at)] += 1
        return out

    def opened(self) -> dict[str, Any]:
        """A chain's first ``keys_loaded``: serial, signer and counts."""
        return {
            "occasion": "opened",
            "serial": self.serial,
            "signer_key_id": self.signer,
            "parties": len({party for party, *_ in self.entries}),
            "keys": self.counts(),
        }

    def changed_since(self, before: KeySet) -> dict[str, Any]:
        """``keys_loaded`` for a change: what differs from ``before``, by party."""
        was = {e[1]: e for e in before.entries}
        now = {e[1]: e for e in self.entries}
        added = [e for k, e in now.items() if k not in was]

        def became(state: str) -> list[_Entry]:
            return [
                e for k, e in now.items()
                if _state(e, self.at) == state
                and (k not in was or _state(was[k], before.at) != state)
            ]  # fmt: skip

        return {
            "occasion": "changed",
            "serial": self.serial,
            "serial_before": before.serial,
            "signer_key_id": self.signer,
            "parties": len({party for party, *_ in self.entries}),
            "keys": self.counts(),
            "added": _by_party(added),
            "revoked": _by_party(became("revoked")),
            "retired": _by_party(became("retired")),
            "expired": _by_party(became("expired")),
            "dropped": _by_party(e for k, e in was.items() if k not in now),
        }


def _state(entry: _Entry, at: datetime) -> str:
    _, _, status, not_after = entry
    if status is KeyStatus.REVOKED:
        return "revoked"
    if status is KeyStatus.RETIRED:
        return "retired"
    return "expired" if not_after is not None and not_after <= at else "live"


def _by_party(entries: Iterable[_Entry]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for party, key_id, *_ in sorted(entries):
        out.setdefault(party, []).append(key_id)
    return out


def key_set(keys: object, *, at: datetime | None = None) -> KeySet | None:
    """The keystore now, or ``None`` when it cannot say (not a listing keystore, or its
    trust file unreadable: the worker runs on, and records the next it can read)."""
    if not isinstance(keys, _Listed):
        return None
    try:
        serial, signer = imported_directory(cast("FileKeyStore", keys))
        # Read now, and after the serial: an import writes the keys before the serial, so
        # these are at least that directory's. The store's cached list may be a second old,
        # which recorded an import's serial with nothing changed and its revocations a
        # tick later under the same serial again.
        keys.refresh()
        listed = keys.keys()  # a keystore's, not a mapping's
        entries = frozenset((k.party, k.key_id, k.status, k.not_after) for k in listed)
    except (KeyStoreError, OSError, ValueError, KeyError):
        return None
    return KeySet(at or datetime.now(UTC), serial, signer, entries)


def keys_record(data: dict[str, Any]) -> Audit:
    return Audit(AuditKind.KEYS_LOADED, data=data)


def opened_record(keys: object, at: datetime) -> list[Audit]:
    """A chain's ``keys_loaded`` at its opening, if the keystore can say."""
    now = key_set(keys, at=at)
    return [] if now is None else [keys_record(now.opened())]


def then_keys(
    before: Callable[[Processor], list[OutRecord]] | None,
    data: dict[str, Any] | None,
    *,
    again: bool,
) -> Callable[[Processor], list[OutRecord]]:
    """What the loop puts on every chain next: ``before`` (a policy load, an earlier change),
    then the change's ``keys_loaded`` if any, then a checkpoint (``again``: even on a head that
    is one already, for a new signing key: ``_keywatch``)."""

    def load(processor: Processor) -> list[OutRecord]:
        out = before(processor) if before is not None else []
        if data is not None:
            out += processor.outbox.apply([keys_record(data)])
        return out + processor.checkpoint(again=again)  # the head: at the batch's close

    return load
