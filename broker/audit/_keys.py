"""Checkpoints signed by the writer of their chain, and verified as that writer's.

A chain ``worker:<topic>-<N>`` (one per input partition) is signed with the worker's own
signing key, and a chain ``console:<host>`` with the console's: each writer holds only its
own key, and a checkpoint counts only when the key that signed it belongs to the principal
its chain names.
"""

from __future__ import annotations

from broker.audit._record import AuditKind
from broker.envelope import KeyPurpose, KeyResolver, KeyStatus, verify_detached
from broker.principals import Principal

#: The principals that write audit chains: the chain's prefix names its writer.
CHAIN_WRITERS = frozenset({Principal.WORKER.value, Principal.CONSOLE.value})

#: What each writer may record. A record of another kind on its chain is not the writer's
#: (a ``decided`` record on a console chain, a review on a worker's) and counts for nothing.
WRITER_KINDS: dict[str, frozenset[AuditKind]] = {
    Principal.WORKER.value: frozenset({
        AuditKind.RECEIVED, AuditKind.DECIDED, AuditKind.DELIVERED, AuditKind.QUARANTINED,
        AuditKind.CONSENT_RECORDED, AuditKind.CONSENT_REFUSED,
        AuditKind.CONSENT_WITHDRAWN_NOTICE, AuditKind.POLICY_LOADED, AuditKind.OPENED,
        AuditKind.CHECKPOINT,
        # `accord policy impact`, run with the worker's keys on a chain of its own per run.
        AuditKind.POLICY_IMPACT,
        # The worker's keystore: the directory it holds at a chain's opening, and each change
        # to it while it runs (``broker.pipeline._keyset``), on every chain it holds.
        AuditKind.KEYS_LOADED,
    }),
    Principal.CONSOLE.value: frozenset({
        AuditKind.CONSOLE_QUERY, AuditKind.OVERRIDE_REVIEWED, AuditKind.CHECKPOINT,
        # `accord audit quarantine --open`: an officer's opening of a quarantined copy, on
        # the command line's console:<host>.cli chain, signed with the console's key.
        AuditKind.QUARANTINE_OPENED,
    }),
}  # fmt: skip


def may_write(chain: str, kind: AuditKind) -> bool:
    """Whether the writer that ``chain`` names may write records of ``kind``."""
    writer = chain_writer(chain)
    return writer is not None and kind in WRITER_KINDS[writer]


def chain_writer(chain: str) -> str | None:
    """The principal a chain belongs to (``worker:w1`` → ``worker``), or None."""
    writer = chain.partition(":")[0]
    return writer if writer in CHAIN_WRITERS else None


class KeystoreAuditSigner:
    """Signs with ``principal``'s newest live signing key (which this keystore holds)."""

    def __init__(self, keys: KeyResolver, principal: Principal) -> None:
        if principal.value not in CHAIN_WRITERS:
            raise ValueError(f"{principal} writes no audit chain")
        self._keys = keys
        self._principal = principal
        self._signed_with: str | None = None

    @property
    def key_id(self) -> str:
        """The key that made the last signature, else the key that would sign now.

        A checkpoint names its key after signing (``ChainWriter.checkpoint``): the key in use
        changes when another process imports a directory naming a newer one, and asking the
        keystore twice could name one key and sign with another."""
        if self._signed_with is not None:
            return self._signed_with
        return self._keys.current_signing_key(self._principal).info.key_id

    def sign(self, data: bytes) -> bytes:
        identity = self._keys.current_signing_key(self._principal)
        self._signed_with = identity.info.key_id
        return identity.key.sign(data)


class KeystoreAuditVerifier:
    """Accepts a checkpoint signed by a non-revoked signing key of its chain's writer.

    A rotated-out (retired or expired) key still vouches for the checkpoints it signed while
    it was current; a revoked key vouches for nothing; another principal's key (a console's
    for a worker's chain, say) never does.
    """

    def __init__(self, keys: KeyResolver) -> None:
        self._keys = keys

    def verify(self, chain: str, key_id: str, data: bytes, signature: bytes) -> bool:
        info = self._keys.public_key(key_id)
        writer = chain_writer(chain)
        if info is None or writer is None or info.party != writer:
            return False
        if info.purpose is not KeyPurpose.SIGN or info.status is KeyStatus.REVOKED:
            return False
        return verify_detached(info, data, signature)
