"""The principals that exist in every deployment, besides the parties of the policy bundle.

One spelling for each, shared by the keystore (whose keys they hold), the envelope's users
(who seals to whom), the audit log (whose chains are whose) and Kafka (whose login is whose).
"""

from __future__ import annotations

import enum

__all__ = ["Principal"]


class Principal(enum.StrEnum):
    """A broker-side principal; its value is its name as key owner, chain prefix and login."""

    #: The broker's worker: agencies seal to it; it opens ingress and seals deliveries.
    WORKER = "worker"
    #: Quarantined records are sealed to it, for IG officers to examine.
    GOVERNANCE = "governance"
    #: The governance console: it writes officers' look-ups and reviews to its own chains.
    CONSOLE = "console"
    #: The audit indexer: a Kafka login that reads the audit log (no keys, no chain).
    INDEXER = "indexer"
    #: Kafka's super user: the one login that makes topics and changes logins and ACLs.
    ADMIN = "admin"

    def chain(self, instance: str) -> str:
        """The audit chain this principal writes as ``instance`` (``worker:worker-1``)."""
        return f"{self.value}:{instance}"
