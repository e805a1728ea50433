"""A delivery-topic record that could not be opened: what the subscriber reports, and how it
is logged by default (partition, offset and reason only: never anything of the record)."""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from broker.sdk._keyholds import UNKNOWN_SIGNER

__all__ = ["Unopenable", "log_unopenable"]

log = structlog.get_logger("accord.sdk")

_UNKNOWN_SIGNER_HINT = (
    "signed by a key this keystore does not accept (expired, revoked or another party's), "
    "so skipped: forged, or read after the broker's signing-key grace ended "
    "(docs/sdk.md, 'Records your keystore cannot open')"
)
_PARKED_HINT = (
    "signed by a broker key this keystore does not know: parked, not lost, and opened once "
    "the latest key directory is imported ('accord keys import'); forged, it stays parked "
    "until dropped (docs/sdk.md, 'Records your keystore cannot open')"
)


@dataclass(frozen=True, slots=True)
class Unopenable:
    """A record on the delivery topic that could not be opened; reported, never dropped silently."""

    partition: int
    offset: int
    reason: str
    #: Kept to be tried again once the keystore changes (broker.sdk._parked), not gone past.
    parked: bool = False


def log_unopenable(party: str, bad: Unopenable) -> None:
    if bad.parked:
        # Someone must import the broker's latest keys (forged, it waits for nothing).
        log.error(
            "record_parked", party=party, partition=bad.partition, offset=bad.offset,
            reason=bad.reason, hint=_PARKED_HINT,
        )  # fmt: skip
        return
    if bad.reason == UNKNOWN_SIGNER:
        # Forged, or an old record read after the broker's signing key expired: someone
        # must look.
        log.error(
            "record_unopenable", party=party, partition=bad.partition, offset=bad.offset,
            reason=bad.reason, hint=_UNKNOWN_SIGNER_HINT,
        )  # fmt: skip
        return
    log.warning(
        "record_unopenable", party=party, partition=bad.partition, offset=bad.offset,
        reason=bad.reason,
    )  # fmt: skip
