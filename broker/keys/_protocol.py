"""The one keystore interface; the local file store implements it, a KMS backend will too."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final, Protocol

from broker.config import KemSuite
from broker.envelope import KeyInfo, KeyPurpose, KeyResolver
from broker.principals import Principal

__all__ = [
    "ALL_PURPOSES",
    "DEFAULT_ROTATION_GRACE",
    "SPECIAL_PRINCIPALS",
    "KeyStore",
]

ALL_PURPOSES: Final[tuple[KeyPurpose, ...]] = (KeyPurpose.SIGN, KeyPurpose.ENCRYPT)

#: Principals with keys in every deployment besides the parties of the policy bundle:
#: ``worker`` (the broker: opens ingress, seals deliveries, signs its audit chain),
#: ``console`` (signs its own audit chain; it never receives data, so it has no encryption
#: key) and ``governance`` (signs the key directory; quarantined records are sealed to it).
SPECIAL_PRINCIPALS: Final[dict[str, tuple[KeyPurpose, ...]]] = {
    Principal.WORKER: ALL_PURPOSES,
    Principal.CONSOLE: (KeyPurpose.SIGN,),
    Principal.GOVERNANCE: ALL_PURPOSES,
}

#: After a rotation the old key keeps verifying and opening for this long, then expires.
#: Seven days covers Kafka's default retention, so records already on a topic stay openable.
DEFAULT_ROTATION_GRACE: Final = timedelta(days=7)


class KeyStore(KeyResolver, Protocol):
    """Keys of every party: public directory for all, private halves for those held here."""

    def keys(self, party: str | None = None) -> list[KeyInfo]:
        """Directory entries (of one party, or all), oldest first."""
        ...

    def parties(self) -> list[str]:
        """Every party with at least one key, sorted."""
        ...

    def private_parties(self) -> list[str]:
        """The principals this store holds private keys for (whose keystore it is)."""
        ...

    def ensure_party(
        self,
        party: str,
        *,
        purposes: Sequence[KeyPurpose] = ALL_PURPOSES,
        kem: KemSuite = KemSuite.HYBRID,
        not_after: datetime | None = None,
    ) -> list[KeyInfo]:
        """Create keys for each purpose that has no active key yet; return those created."""
        ...

    def rotate(
        self,
        party: str,
        *,
        purposes: Sequence[KeyPurpose] = ALL_PURPOSES,
        kem: KemSuite = KemSuite.HYBRID,
        grace: timedelta = DEFAULT_ROTATION_GRACE,
    ) -> list[KeyInfo]:
        """Make new keys; the old active keys expire after ``grace``. Others seal to the new
        encryption key once they hold a directory naming it; the new signing key signs once
        this store holds one (before any directory, at once)."""
        ...

    def retire(self, key_id: str) -> KeyInfo:
        """Stop using a key for anything (no longer opens or verifies)."""
        ...

    def revoke(self, key_id: str) -> KeyInfo:
        """Mark a key compromised: refused at once, for everything, whatever it signed."""
        ...
