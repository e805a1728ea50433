"""A new signing key for the worker: every chain it holds is checkpointed under it at once.

The keystore picks up an imported directory while the worker runs, and the new key signs
from then on. A quiet chain would otherwise keep a latest checkpoint signed by the old key
only, and revoking that key (a rotation's last step) would leave the chain vouched for by
nothing (``accord audit verify``: schemas/audit-chain.md §6) until its next record.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Protocol

import structlog

from broker.envelope import KeyResolver
from broker.errors import KeyStoreError
from broker.principals import Principal

if TYPE_CHECKING:
    from broker.pipeline._effects import OutRecord
    from broker.pipeline._group import Reload
    from broker.pipeline._processor import Processor

log = structlog.get_logger("accord.worker")

CHECK_EVERY_S = 5.0


class _Loop(Protocol):
    pending_policy: Reload | None


def signing_key_id(keys: KeyResolver) -> str | None:
    """The key the worker signs with now, or ``None`` if it has none (it then stops when it
    next checkpoints, saying so: ``Outbox.checkpoint``)."""
    try:
        return keys.current_signing_key(Principal.WORKER).info.key_id
    except KeyStoreError:
        return None


def checkpoint_again(before: Reload | None) -> Reload:
    """What the loop puts on every chain next: ``before`` (a policy load) then a checkpoint,
    even on a head that is one already."""

    def load(processor: Processor) -> list[OutRecord]:
        first = before(processor) if before is not None else []
        return first + processor.checkpoint(again=True)

    return load


async def checkpoint_on_new_signer(
    keys: KeyResolver, loop: _Loop, stop: asyncio.Event, *, every: float = CHECK_EVERY_S
) -> None:
    """Until ``stop``: when the worker's signing key changes, checkpoint every chain."""
    signer = signing_key_id(keys)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)
        now = signing_key_id(keys)
        if now is None or now == signer:
            continue
        signer = now
        log.info("signing_key_changed", key_id=now, then="checkpointing every chain held")
        loop.pending_policy = checkpoint_again(loop.pending_policy)
