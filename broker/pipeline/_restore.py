"""Rebuilding the worker's state from its committed changelog (``accord.worker.state``).

Only what the worker itself wrote is taken: every entry must carry a valid state MAC
(``_state``), and a sealed entry must also be sealed by the worker. Anything else (a junk
entry, one injected to skip inputs or fork the audit chain, a consent entry an agency
sealed) is skipped and reported, never allowed to crash the restore; one a later genuine
entry for the same key replaced is only noted (``state_entries_superseded``). The worker
then refuses to run only if what was lost matters for correctness: the position of an input
partition or the head of an audit chain, for which no genuine entry remains (resuming
without them would skip or repeat inputs, or fork the chain). Lost replay ids, consent or
shares are reported and the worker runs: a missing consent fails closed (nothing shared on
it). Each refusal is counted by cause (``Refusal``), each with its own hint: a consent
entry with the worker's MAC that will not open under a worker key revoked or missing here
is the keystore's matter; an entry without that MAC, of any kind, was written by someone
else, and only the worker and the admin may write the topic, so a privileged principal
wrote it; after looking, the admin clears one with a tombstone for its key. Consent
entries sealed to a worker key rotated out are sealed again to the current one
(``resealable``, ``_reseal``).

One refusal stops the worker instead: a genuine consent entry under a worker key newer than
any this keystore holds, another worker's, which says this keystore is an out-of-date copy
(``_newer_keys``). The restore refuses to start, and the tail stops the worker.
"""

from __future__ import annotations

import asyncio
import hmac
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog
from pydantic import ValidationError

from broker.envelope import DEK_BUNDLE_HEADER, KeyResolver, Opener
from broker.errors import (
    ConfigError,
    EnvelopeError,
    KeyRejected,
    KeyStoreError,
    TransportError,
)
from broker.kafka import Consumer, KafkaClients, TopicPartition, stop_bounded, translated
from broker.pipeline._newer_keys import SETTLE_S, NewerKeys
from broker.pipeline._state import STATE_MAC_HEADER, state_mac
from broker.pipeline._view import StateView
from broker.principals import Principal
from broker.topics import STATE

log = structlog.get_logger("accord.worker")

# Kinds of entry without which the worker must not run (see the module docstring).
_VITAL = frozenset({"o", "h"})


class _AlwaysNew:
    """Restoring state re-reads records already processed: replay does not apply."""

    def first_sighting(self, event_id: str) -> bool:  # noqa: ARG002  # protocol signature
        return True


@dataclass
class RestoreReport:
    """What the restore refused, by kind of entry (``p``, ``k``, ``t``, ``h``, ``o``, and an
    older Accord's ``r``, ``c``, ``s``).

    A refused entry that a genuine one for the same key follows is superseded, not refused:
    compaction never touches the changelog's active segment, so after a re-seal the entry
    sealed to the revoked key stays beside its replacement for days, and counting it would
    tell operators a consent was lost when none was.
    """

    #: Keys whose latest entries were refused: their kind and how many since the last genuine.
    unresolved: dict[str, tuple[str, int]] = field(default_factory=dict)
    #: Why those were refused, by key: a ``Refusal`` cause and how many.
    causes: dict[str, Counter[str]] = field(default_factory=dict)
    superseded: Counter[str] = field(default_factory=Counter)
    vital_refused: set[str] = field(default_factory=set)
    vital_restored: set[str] = field(default_factory=set)

    @property
    def refused(self) -> Counter[str]:
        """Refused entries no genuine later entry for the same key replaced, by kind."""
        out: Counter[str] = Counter()
        for kind, n in self.unresolved.values():
            out[kind] += n
        return out

    @property
    def refused_by_cause(self) -> Counter[str]:
        """Refused entries no genuine later entry replaced, by cause (``Refusal``)."""
        out: Counter[str] = Counter()
        for why in self.causes.values():
            out.update(why)
        return out

    def refuse(self, name: str, kind: str, cause: str) -> None:
        """Count one more refused entry for ``name`` since its last genuine one."""
        before = self.unresolved.get(name)
        self.unresolved[name] = (kind, 1 + (before[1] if before else 0))
        self.causes.setdefault(name, Counter())[cause] += 1

    def resolve(self, name: str) -> tuple[str, int] | None:
        """Forget ``name``'s refused entries (a genuine one or a tombstone followed); return
        their kind and count, if any."""
        self.causes.pop(name, None)
        return self.unresolved.pop(name, None)

    @property
    def lost(self) -> list[str]:
        """Vital entries refused with no genuine entry for the same key."""
        return sorted(self.vital_refused - self.vital_restored)


_KINDS = frozenset({"p", "k", "t", "h", "o", "r", "c", "s"})
_SEALED = frozenset({"k", "c"})  # consent: the identifiers the policy engine matches on


class Refusal:
    """Why an entry was refused; each cause has its own remedy, so its own hint."""

    #: No state MAC, or one this worker's MAC key did not make: someone else wrote it.
    FORGED = "forged"
    #: The worker's own (its MAC verifies), sealed to or signed by a worker key revoked or
    #: missing here: the keystore, not an intruder.
    KEYS = "keys"
    #: The worker's MAC verifies but the entry is not one it takes (sealed by another party,
    #: its envelope altered, or a value this version cannot read).
    UNREADABLE = "unreadable"


def sealed_with(encryption_key_id: str, signing_key_id: str) -> str:
    """One id for the pair of worker keys a state entry depends on: the key it is sealed to
    and the key that signed it. Key ids are hex, so the separator cannot occur in either."""
    return f"{encryption_key_id}+{signing_key_id}"


class EntryReader:
    """Checks and applies changelog entries to a view (the restore, then the tail)."""

    def __init__(self, keys: KeyResolver, mac_key: bytes, view: StateView | None = None) -> None:
        self.view = view if view is not None else StateView()
        self.report = RestoreReport()
        self._opener = Opener(Principal.WORKER, keys, replay_guard=_AlwaysNew(), at_rest=True)
        self._keys = keys
        self._mac_key = mac_key
        #: Genuine consent entries under worker keys newer than any held here.
        self.newer = NewerKeys(keys)

    def current_key(self) -> str | None:
        """The keys the worker seals its state with now (its sealer's choice), if it has
        both: its encryption key and its signing key, as one id (:func:`sealed_with`). An
        entry is opened only while both of its keys are live, so one under either's
        predecessor is as stale as the other: in a staged rotation the worker seals to its
        new encryption key days before its new signing key signs (docs/operations.md)."""
        try:
            encrypt = self._keys.current_encryption_key(Principal.WORKER).key_id
            sign = self._keys.current_signing_key(Principal.WORKER).info.key_id
        except KeyStoreError:
            return None
        return sealed_with(encrypt, sign)

    def stale(self) -> int:
        """How many consent entries of the view are sealed to, or signed by, a worker key
        other than the current ones."""
        return self.view.sealed.count_not_under(self.current_key())

    def resealable(self) -> dict[str, bytes]:
        """Consent entries sealed to, or signed by, a worker key other than its current ones
        (rotated out, or current until a new one appeared), by changelog key: the plaintext
        the worker seals again under the current keys (``Processor.reseal``), so that
        revoking the old ones loses nothing."""
        return self.view.sealed.not_under(self.current_key())

    def behind(self, *, running: bool, settle: bool = True) -> None:
        """Apply the entries waiting for a key that has appeared here since; raise for those
        under a worker key newer than any held here (``_newer_keys``) that have waited
        ``SETTLE_S`` for it (``settle``), or at once."""
        for u in self.newer.known_now():
            name = u.key.decode("utf-8", "replace")
            if self._take(u.key, name, u.value, u.headers, None) is None:
                self.report.resolve(name)
        self.newer.check(running=running, settle=settle)

    def apply(
        self,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes | None]],
        written_ms: int | None = None,
    ) -> None:
        """Check and apply one entry; ``written_ms`` is its Kafka timestamp (None: unknown,
        as in tests, when no entry counts as written by a worker with newer keys)."""
        if key is None:
            return
        name = key.decode("utf-8", "replace")
        report = self.report
        self.newer.forget(name)
        if value is None:  # a tombstone: the admin's way to clear a refused entry on purpose
            report.vital_refused.discard(name)
            report.resolve(name)
            self.view.sealed.drop(name)
            return
        kind = name.partition(":")[0]
        if (cause := self._take(key, name, value, headers, written_ms)) is None:
            if kind in _VITAL:
                report.vital_restored.add(name)
            if (earlier := report.resolve(name)) is not None:
                report.superseded[earlier[0]] += earlier[1]
        else:
            report.refuse(name, kind if kind in _KINDS else "?", cause)
            if kind in _VITAL:
                report.vital_refused.add(name)

    def _take(
        self,
        key: bytes,
        name: str,
        value: bytes,
        headers: Sequence[tuple[str, bytes | None]],
        written_ms: int | None,
    ) -> str | None:
        """Apply one entry; None if taken, else why not (a ``Refusal`` cause)."""
        macs = [v for k, v in headers if k == STATE_MAC_HEADER]
        if len(macs) != 1 or macs[0] is None:
            return Refusal.FORGED
        if not hmac.compare_digest(macs[0], state_mac(self._mac_key, key, value)):
            return Refusal.FORGED
        plain, sealed_to = value, None
        if name.partition(":")[0] in _SEALED:
            envelope = [(k, v) for k, v in headers if k != STATE_MAC_HEADER and v is not None]
            try:
                opened = self._opener.open_kafka(value, envelope, topic=STATE)
            except EnvelopeError as exc:
                self.newer.note(name, key, value, headers, written_ms)
                # The MAC covers the value, not the headers (the DEK bundle among them): a
                # key rejected is the keystore's matter; a bundle that fails otherwise, or
                # none at all (the worker writes one with every entry), was altered after the
                # worker wrote it, or is not a worker's at all.
                bundled = any(k == DEK_BUNDLE_HEADER for k, _ in envelope)
                keys = isinstance(exc, KeyRejected) and bundled
                return Refusal.KEYS if keys else Refusal.UNREADABLE
            if opened.sender != Principal.WORKER:
                return Refusal.UNREADABLE
            plain = opened.payload
            sealed_to = sealed_with(opened.recipient_key_id, opened.signer_key_id)
        try:
            self.view.apply(name, plain)
        except (ValueError, KeyError, TypeError, ValidationError):
            return Refusal.UNREADABLE
        if sealed_to is not None:
            self.view.sealed.put(name, sealed_to, plain)
        return None


async def restore_state(
    kafka: KafkaClients, keys: KeyResolver, mac_key: bytes
) -> tuple[EntryReader, dict[TopicPartition, int]]:
    """Rebuild the view of every task's state from the committed changelog, start to end;
    return it (in its reader, which the tail goes on with) and where it ended.

    Raises ``ConfigError`` (one line) when a partition's position or a chain's head is lost.
    """
    reader = EntryReader(keys, mac_key)
    # Without a group, a consumer subscribed to a topic is assigned all its partitions.
    consumer = kafka.consumer(STATE, client_id="accord-worker-restore")
    try:
        async with translated(f"restoring worker state from {STATE}"):
            ends = await _read_all(consumer, reader)
    finally:
        # A close over TLS can take 30 s (``stop_bounded`` says why): about one fresh start in
        # three on a loaded machine (docs/performance.md). Past the bound it goes on in the
        # background, since nothing the worker does needs it finished.
        await stop_bounded(consumer)
    report = reader.report
    if report.superseded:
        # Nothing lost: each was replaced by a genuine entry (most often a re-seal after a
        # worker key rotation), and compaction will drop it.
        log.info(
            "state_entries_superseded", **{f"kind_{k}": n for k, n in report.superseded.items()}
        )
    if refused := report.refused:
        log.error(
            "state_entries_refused",
            **{f"kind_{k}": n for k, n in refused.items()},
            **_refused_hints(report.refused_by_cause),
        )
    await _settle(reader)
    if lost := report.lost:
        raise ConfigError(
            f"{STATE}: {len(lost)} entries the worker needs failed authentication and no "
            f"genuine one remains (first: {lost[0][:80]}); refusing to start rather than skip "
            "or repeat inputs or fork the audit chain (docs/operations.md, 'Worker state')"
        )
    return reader, ends


async def _settle(reader: EntryReader) -> None:
    """Refuse to start over entries under a key newer than any held here, once each has had
    ``SETTLE_S`` to appear (a keystore shared with a worker rotating it now)."""
    for _ in range(int(SETTLE_S / 0.25)):
        reader.behind(running=False)
        if not reader.newer.pending:
            return
        await asyncio.sleep(0.25)
    reader.behind(running=False, settle=False)


def _refused_hints(causes: Counter[str]) -> dict[str, object]:
    """A count and a hint for each cause of refusal present: a forged consent entry must not
    send the operator to restore a keystore, nor a revoked key to hunt an intruder."""
    out: dict[str, object] = {}
    for cause, hint in _HINTS.items():
        if causes[cause]:
            out[f"refused_{cause}"] = causes[cause]
            out[f"hint_{cause}"] = hint
    return out


_HINTS = {
    Refusal.FORGED: (
        "entries without a state MAC made with this worker's linkage key (any kind): written "
        "by a principal with write access to the topic, not by the worker (or, if every "
        "entry is refused so, the worker's linkage key is not the one it wrote them with); "
        "investigate, then clear each with a tombstone (docs/operations.md, 'Worker state')"
    ),
    Refusal.KEYS: (
        "consent entries (k) this worker wrote, sealed to a worker encryption key or signed "
        "by a worker signing key that is revoked or missing here: restore the worker "
        "keystore from backup, or have the consent authorities file those consents again "
        "(docs/operations.md, 'Worker state')"
    ),
    Refusal.UNREADABLE: (
        "entries whose state MAC verifies but which the worker cannot take (not sealed by "
        "the worker, a DEK bundle altered since, or a value this version does not read): "
        "only a holder of the worker's linkage key makes that MAC; investigate "
        "(docs/operations.md, 'Worker state')"
    ),
}


async def _read_all(consumer: Consumer, reader: EntryReader) -> dict[TopicPartition, int]:
    await consumer.start()
    if STATE not in await consumer.topics():
        # Never "no state": starting without the changelog would forget every replay id.
        raise TransportError(f"the state changelog {STATE} does not exist")
    for _ in range(100):
        tps = sorted(consumer.assignment())
        if tps:
            break
        await asyncio.sleep(0.1)
    else:
        raise TransportError(f"no partitions of {STATE} could be assigned")
    await consumer.seek_to_beginning(*tps)
    end = await consumer.end_offsets(tps)
    remaining = {tp for tp in tps if end[tp] > 0}
    while remaining:
        batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=5000)
        for msgs in batch.values():
            for m in msgs:
                reader.apply(m.key, m.value, m.headers, m.timestamp)
        for tp in list(remaining):
            if await consumer.position(tp) >= end[tp]:
                remaining.discard(tp)
    return {tp: max(end[tp], await consumer.position(tp)) for tp in tps}
