"""What an SDK client checks of its keystore at construction, so that a keystore that cannot do
the job fails at once, naming the fix, rather than at the first record with an envelope error.

The envelope's errors say nothing on purpose (they must not act as an oracle); these are about
the operator's own keystore before anything is sealed or opened, so they may say what is
missing. They name parties and commands, never key material.
"""

from __future__ import annotations

import time

from broker.config import KemSuite
from broker.envelope import KeyPurpose, Sealer
from broker.errors import KeyNotFound, KeyStoreError
from broker.keys import FileKeyStore, KeyStore, lost_signing_keys, lost_signing_keys_advice
from broker.principals import Principal

_IMPORT = "import the current signed key directory (accord keys import)"


def require_sealing(party: str, sealer: Sealer, keystore: KeyStore, kem: KemSuite) -> None:
    """Everything the party sends is signed by its own live key and sealed to the broker
    with ``kem``, the KEM the client is configured for (the Sealer's)."""
    # A keystore made again signs with a key the broker does not know: every record would be
    # refused on arrival while the sender is told it was sent. Its own directory shows it.
    # Only the file keystore keeps which of its keys the directory it took lists.
    if isinstance(keystore, FileKeyStore) and lost_signing_keys(keystore, party):
        raise KeyStoreError(lost_signing_keys_advice(party))
    # The Sealer's own answers: which of the party's keys signs (after a rotation, say) is its
    # choice alone, and the KEM it will seal with is the one configured.
    if not sealer.can_sign():
        raise KeyStoreError(
            f"this keystore holds no live signing key for {party} (revoked or expired): "
            "make new keys (accord keys rotate) and have them signed into the key directory"
        )
    if sealer.can_seal_to(Principal.WORKER):
        return
    # The Sealer seals to the broker's newest encryption key, and never to one of another
    # KEM (no downgrade). Live but of the other suite is a setting to change, not a directory
    # to import: importing again would change nothing.
    try:
        current = keystore.current_encryption_key(Principal.WORKER)
    except KeyNotFound:
        current = None
    if current is not None and current.is_live_ts(time.time()) and current.alg.value != kem:
        raise KeyStoreError(
            f"the broker's ({Principal.WORKER}) live encryption key is {current.alg.value}, "
            f"and this client is configured for {kem.value} (ACCORD_ENVELOPE__KEM; in the "
            "SDK, envelope=): configure the KEM the deployment's keys use"
        )
    raise KeyStoreError(
        f"this keystore holds no live encryption key for the broker ({Principal.WORKER}): {_IMPORT}"
    )


def require_opening(party: str, keystore: KeyStore) -> None:
    """Deliveries are sealed to the party's newest live encryption key and signed by the
    broker: both must be here to open them."""
    now = time.time()  # the Opener judges key lifetimes by the wall clock too
    try:
        own = keystore.current_encryption_key(party)
    except KeyNotFound:
        own = None
    if own is None or not own.is_live_ts(now) or keystore.decryption_key(own.key_id) is None:
        raise KeyStoreError(
            f"this keystore holds no live encryption key of {party}'s own (revoked or "
            "expired): make new keys (accord keys rotate) and have them signed into the key "
            "directory"
        )
    if not any(
        k.purpose is KeyPurpose.SIGN and k.is_live_ts(now) for k in keystore.keys(Principal.WORKER)
    ):
        raise KeyStoreError(
            f"this keystore holds no live signing key of the broker ({Principal.WORKER}) "
            f"to verify deliveries with: {_IMPORT}"
        )
