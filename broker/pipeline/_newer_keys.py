"""Telling a worker whose keystore is an older copy than another worker's (``_restore``).

Every worker runs with the same worker keystore. One given an out-of-date copy (a rotation
it never got, a restore from an old backup) would join the group, take partitions,
quarantine every record sealed to the new worker key and decide without the consent filed or
sealed again under it (a lost withdrawal fails open). What gives it away is a consent entry
in the changelog that another worker wrote (its state MAC verifies) and that is sealed to,
or signed by, a key this keystore has never held, written after the newest worker key it
does hold. The restore then refuses to start, and the tail stops the worker.

What is and is not trusted: the state MAC covers an entry's key and value, not its headers,
so the key ids (the DEK bundle's) and the time (Kafka's timestamp) are the writer's claims.
Only the worker and the admin may write the changelog; an admin replaying a genuine value
under a made-up key id could stop the workers (as deleting the changelog could). Every entry
for a key forgets what an earlier one for that key claimed: the admin clears it by writing
the last genuine entry for that key again (from an earlier offset), not with a tombstone,
which compaction would follow by dropping the genuine consent record too. A time more than
``SKEW_MS`` ahead of the reader's clock is believed of nothing. Not counted either: a key
this keystore knows, even revoked (those entries are refused, as ever); an entry older than
the keystore's newest worker key (a keystore lost and made anew, or rotated because no copy
holding the key is left).

A keystore is read afresh at most once a second (``FileKeyStore``): with one shared
keystore, another worker may seal to a new key a moment before this one sees it. So the
restore and the tail wait ``SETTLE_S`` for an unknown key to appear, then apply the entry
after all (instead of losing that consent until the next start), or stop. Meanwhile the
tail does not count its view as current (``ChangelogTail.reach``): nothing is decided on a
view that lacks the entry, which may be a withdrawal.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from broker.envelope import DEK_BUNDLE_HEADER, KeyResolver, claimed_key_ids, read_header
from broker.errors import ConfigError, EnvelopeError, KeyStoreError
from broker.principals import Principal
from broker.topics import STATE

#: How far ahead of this reader's clock an entry's timestamp may be and still count.
SKEW_MS = 5 * 60 * 1000
#: How long a running worker waits for a key another worker already uses (above).
SETTLE_S = 3.0

Headers = Sequence[tuple[str, bytes | None]]


@dataclass(frozen=True, slots=True)
class Unknown:
    """A genuine consent entry naming keys this keystore has never held."""

    key_ids: tuple[str, ...]
    key: bytes
    value: bytes
    headers: Headers
    seen: float  # monotonic: when this reader first met it


class NewerKeys:
    """The entries, by changelog key, that name worker keys newer than any held here."""

    def __init__(
        self,
        keys: KeyResolver,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys = keys
        self._clock = clock
        self._monotonic = monotonic
        self.pending: dict[str, Unknown] = {}

    def forget(self, name: str) -> None:
        """A later entry (or a tombstone) for ``name``: what an earlier one claimed is moot."""
        self.pending.pop(name, None)

    def note(
        self, name: str, key: bytes, value: bytes, headers: Headers, written_ms: int | None
    ) -> None:
        """Keep a genuine consent entry that did not open if it names a worker key this
        keystore has never held and was written after the newest it does hold."""
        if written_ms is None or written_ms > self._clock() * 1000 + SKEW_MS:
            return
        bundles = [v for k, v in headers if k == DEK_BUNDLE_HEADER and v is not None]
        if len(bundles) != 1:
            return
        try:
            header = read_header(value)
            named = claimed_key_ids(bundles[0])
            newest = max(
                self._keys.current_encryption_key(Principal.WORKER).created_at,
                self._keys.current_signing_key(Principal.WORKER).info.created_at,
            )
        except (EnvelopeError, KeyStoreError):
            return  # no bundle to read, or no worker keys at all: the start says so
        if header.sender != Principal.WORKER or header.recipient != Principal.WORKER:
            return
        if written_ms <= newest.timestamp() * 1000:
            return
        unknown = tuple(k for k in dict.fromkeys(named) if self._keys.public_key(k) is None)
        if unknown:
            self.pending[name] = Unknown(unknown, key, value, headers, self._monotonic())

    def known_now(self) -> list[Unknown]:
        """Entries whose keys this keystore holds by now (read afresh): to apply again."""
        ready = [
            (name, u)
            for name, u in self.pending.items()
            if all(self._keys.public_key(k) is not None for k in u.key_ids)
        ]
        for name, _ in ready:
            del self.pending[name]
        return [u for _, u in ready]

    def check(self, *, running: bool, settle: bool = True) -> None:
        """Raise :func:`keys_behind` for what is pending (``settle``: only what has waited
        ``SETTLE_S`` for its key)."""
        due = list(self.pending.values())
        if settle:
            now = self._monotonic()
            due = [u for u in due if now - u.seen >= SETTLE_S]
        if due:
            raise keys_behind(due, running=running)


def keys_behind(entries: Sequence[Unknown], *, running: bool) -> ConfigError:
    """The one line: how many entries, which keys, what to do; never a value (key ids are
    public)."""
    key_ids = sorted({k for u in entries for k in u.key_ids})
    doing = "stopping" if running else "refusing to start"
    return ConfigError(
        f"{STATE}: {len(entries)} consent entries a worker wrote after this keystore's newest "
        f"worker key are sealed to or signed by {len(key_ids)} key(s) it has never held "
        f"(first: {key_ids[0]}): this worker's keystore is an older copy than that worker's; "
        f"{doing} rather than quarantine records sealed to the new key and decide without "
        "that consent. Give this worker the current worker keystore (on Kubernetes: update "
        "the Secret, then a rollout restart); docs/operations.md, 'Worker state'"
    )
