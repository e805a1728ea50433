"""The audit chain page's data: the whole-index verification, and which chains count as broken.

A chain counts as broken when the indexer found it so (``chain_heads``), or when the last
verification kept in the index failed there: that stays so until a later verification
passes, whoever ran it and from where (``accord audit verify`` keeps its result too).
"""

from __future__ import annotations

import asyncio

from broker.console._deps import ConsoleDeps
from broker.governance import AuditStore, VerifyRun, VerifySummary, verify_and_keep

#: Stands for the index's derived tables, when the failure names no chain.
NO_CHAIN = "(the index's derived tables)"


def broken_chains(store: AuditStore, last: VerifyRun | None) -> set[str]:
    """The chains the indexer found broken, and the one the last verification failed on."""
    broken = {name for name, head in store.heads().items() if head.broken_seq is not None}
    if last is not None and not last.ok:
        broken.add(last.chain or NO_CHAIN)
    return broken


async def verify_all(deps: ConsoleDeps, officer: str) -> VerifySummary:
    """:func:`verify_and_keep` over every chain, in a thread on its own connection when there
    is one, so the pages and the indexer sharing the event loop keep going meanwhile."""
    reopen = deps.reopen
    if reopen is None:
        return verify_and_keep(deps.store, deps.verifier, by=officer, via="console",
                               clock=deps.clock)  # fmt: skip

    def run() -> VerifySummary:
        store = reopen()
        try:
            return verify_and_keep(store, deps.verifier, by=officer, via="console",
                                   clock=deps.clock)  # fmt: skip
        finally:
            store.close()

    return await asyncio.to_thread(run)
