"""The console's metrics and probes.

Labels come from fixed sets written here and in the pages (an outcome, a page name): never a
user name, an address or anything looked up. The probes answer the console's ops server
(``broker.ops``), a listener apart from the pages, so they need no session and pass through
no sign-in redirect; they read only what the console keeps anyway.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

import structlog
from prometheus_client import CollectorRegistry, Counter

from broker.governance import AuditStore
from broker.ops import OK, Check
from broker.topics import AUDIT
from broker.webauth import accounts_ready

log = structlog.get_logger("accord.console")


class SignInOutcome(enum.StrEnum):
    OK = "ok"
    FAILED = "failed"  # wrong name, password or code: which one is nobody's business
    THROTTLED = "throttled"  # refused by the throttle before any check counted
    BUSY = "busy"  # refused unchecked: too many sign-in checks waiting at once


class ConsoleMetrics:
    def __init__(
        self, registry: CollectorRegistry, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.registry = registry
        self._clock = clock
        self._audit_failed_at: float | None = None
        self.sign_ins = Counter(
            "accord_console_sign_ins",
            "Sign-in attempts, by outcome (ok, failed, throttled).",
            ["outcome"],
            registry=registry,
        )
        self.lookups = Counter(
            "accord_console_lookups",
            "Look-ups recorded in the audit log and shown, by page.",
            ["page"],
            registry=registry,
        )
        self.audit_writes = Counter(
            "accord_console_audit_writes",
            "The console's own audit records (one per look-up or review), by result.",
            ["result"],
            registry=registry,
        )
        for outcome in SignInOutcome:  # present from the start, so rates work from zero
            self.sign_ins.labels(outcome=outcome.value)

    def signed_in(self, outcome: SignInOutcome) -> None:
        self.sign_ins.labels(outcome=outcome.value).inc()

    def audit_written(self, page: str, *, ok: bool) -> None:
        self.audit_writes.labels(result="ok" if ok else "failed").inc()
        if ok:
            self.lookups.labels(page=page).inc()
            self._audit_failed_at = None
        else:
            self._audit_failed_at = self._clock()

    def audit_failed_within(self, seconds: float) -> bool:
        failed = self._audit_failed_at
        return failed is not None and self._clock() - failed <= seconds


class ConsoleProbes:
    """``/livez`` and ``/readyz`` of a console process.

    Ready: the web server has started, the index store answers a small query, the last
    audit write did not fail within ``window`` seconds, and the users file holds an account
    (``accounts``). A failed write clears itself after the window (or at the next write that
    works): a console taken out of service until an officer's next look-up succeeds would
    never get one. A console started before its first account runs, so that ``add-user`` can
    run in its container, and is ready once ``add-user`` has made one, without a restart.
    """

    def __init__(
        self,
        metrics: ConsoleMetrics,
        store: AuditStore,
        *,
        window: float,
        serving: Callable[[], bool],
        accounts: Callable[[], bool],
    ) -> None:
        self._metrics = metrics
        self._accounts = accounts
        self._store = store
        self._window = window
        self._serving = serving

    def live(self) -> Check:
        # The ops server answers from the console's own event loop: answering at all shows
        # the loop is not blocked. What is left to tell is whether the web server still runs.
        return OK if self._serving() else Check(ok=False, reason="web server stopped")

    def ready(self) -> Check:
        if not self._serving():
            return Check(ok=False, reason="web server not started")
        try:
            self._store.offsets(AUDIT)  # one small table: the store opens and answers
        except Exception as exc:  # noqa: BLE001  # any failure means not ready; say which kind
            log.warning("console_store_unavailable", error=type(exc).__name__)
            return Check(ok=False, reason="index store unavailable")
        if self._metrics.audit_failed_within(self._window):
            return Check(ok=False, reason="audit log unavailable")
        return accounts_ready(self._accounts)
