"""The audit chain page's data: the whole-index verification, what it found until the page
shows it, and which chains count as broken.

A chain counts as broken when the indexer found it so (``chain_heads``), or when the last
verification kept in the index failed there: that stays so until a later verification
passes, whoever ran it and from where (``accord audit verify`` keeps its result too).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass

from broker.console._deps import ConsoleDeps
from broker.governance import AuditStore, VerifyRun, VerifySummary, verify_and_keep

#: Stands for the index's derived tables, when the failure names no chain.
NO_CHAIN = "(the index's derived tables)"


def broken_chains(store: AuditStore, last: VerifyRun | None) -> set[str]:
    """The chains the indexer found broken, and the one the last verification failed on."""
    broken = set(store.broken_chains())
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


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one verification on the console found, for the chain page: a pass's summary, a
    failure's words, or why it did not run (busy, or unable to)."""

    summary: VerifySummary | None = None
    broken: str | None = None
    notice: str | None = None


class Shown:
    """Each session's last verification, from its POST to the chain page the redirect loads
    (Post/Redirect/Get: a reload or a bookmark is of ``/chains``, never the POST), shown once.
    In memory, by session id, the newest ``bound`` only: a result not collected is no loss,
    the index keeps every run's result (``last_verification``) for the page to say."""

    def __init__(self, bound: int = 200) -> None:
        self._bound = bound
        self._held: OrderedDict[str, Outcome] = OrderedDict()

    def put(self, session_id: str, outcome: Outcome) -> None:
        self._held.pop(session_id, None)
        self._held[session_id] = outcome
        while len(self._held) > self._bound:
            self._held.popitem(last=False)

    def take(self, session_id: str) -> Outcome | None:
        return self._held.pop(session_id, None)
