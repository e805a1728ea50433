"""New keys for the worker while it runs: a new signing key checkpoints every chain it holds
under it at once, a new encryption key seals its consent state again to it, and any change
to its keystore is recorded on every chain it holds (``keys_loaded``: ``_keyset``).

The keystore picks up an imported directory while the worker runs, and the new keys sign
and seal from then on. A quiet chain would otherwise keep a latest checkpoint signed by the
old key only, and revoking that key (a rotation's last step) would leave the chain vouched
for by nothing (``accord audit verify``: schemas/audit-chain.md §6) until its next record.
And consent entries would stay sealed to the old encryption key until the worker's next
start: revoking it (as after a compromise) would lose them (``_reseal``).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from broker.envelope import KeyResolver
from broker.errors import KeyStoreError
from broker.pipeline._keyset import key_set, then_keys
from broker.principals import Principal

if TYPE_CHECKING:
    from broker.pipeline._group import Reload

log = structlog.get_logger("accord.worker")

CHECK_EVERY_S = 5.0


class _Loop(Protocol):
    pending_policy: Reload | None
    #: A re-seal asked of the loop: ``True`` for a new key (``state_resealed`` even when
    #: there is nothing to seal), ``False`` for the regular check for stragglers.
    pending_reseal: bool | None


def signing_key_id(keys: KeyResolver) -> str | None:
    """The key the worker signs with now, or ``None`` if it has none (it then stops when it
    next checkpoints, saying so: ``Outbox.checkpoint``)."""
    try:
        return keys.current_signing_key(Principal.WORKER).info.key_id
    except KeyStoreError:
        return None


def encryption_key_id(keys: KeyResolver) -> str | None:
    """The key the worker seals its state to now, or ``None`` if it has none."""
    try:
        return keys.current_encryption_key(Principal.WORKER).key_id
    except KeyStoreError:
        return None


def checkpoint_again(before: Reload | None) -> Reload:
    """What the loop puts on every chain next: ``before`` (a policy load) then a checkpoint,
    even on a head that is one already."""
    return then_keys(before, None, again=True)


async def follow_keys(
    keys: KeyResolver, loop: _Loop, stop: asyncio.Event, *, every: float = CHECK_EVERY_S
) -> None:
    """Until ``stop``, every ``every`` seconds: when the worker's keystore changes, record
    what changed (``keys_loaded``) on every chain; when its signing key changes, checkpoint
    every chain; when either key changes, seal its consent state again under the current
    ones; otherwise look for consent entries another worker sealed to an older key (one
    that picked the new key up later, or a rotation's last seconds)."""
    signer, sealer = signing_key_id(keys), encryption_key_id(keys)
    recorded = key_set(keys)  # what each chain's opening recorded, near enough (``_keyset``)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)
        if stop.is_set():
            return
        new_key = False
        change = None
        if (now_set := key_set(keys)) is not None:
            if recorded is not None and not now_set.same_keys(recorded):
                change = now_set.changed_since(recorded)
                log.info("key_directory_changed", **_counts(change),
                         then="recording it on every chain held")  # fmt: skip
            if recorded is None or change is not None:
                recorded = now_set
        now = signing_key_id(keys)
        again = now is not None and now != signer
        if again:
            signer = now
            log.info("signing_key_changed", key_id=now, then="checkpointing every chain held")
            # Consent entries the old key signed are refused once it is revoked, as are those
            # sealed to an old encryption key: in a staged rotation this comes days after
            # the new encryption key, and everything filed between is under the old signer.
            new_key = True
        if again or change is not None:
            loop.pending_policy = then_keys(loop.pending_policy, change, again=again)
        now = encryption_key_id(keys)
        if now is not None and now != sealer:
            sealer = now
            log.info("encryption_key_changed", key_id=now, then="sealing consent state again")
            new_key = True
        if new_key:
            loop.pending_reseal = True
        elif loop.pending_reseal is None:
            loop.pending_reseal = False


def _counts(change: dict[str, Any]) -> dict[str, int]:
    """The change for the log: serials and how many keys, never which."""
    sizes = {k: sum(len(ids) for ids in change[k].values())
             for k in ("added", "revoked", "retired", "expired", "dropped")}  # fmt: skip
    return {"serial": change["serial"], "serial_before": change["serial_before"], **sizes}
