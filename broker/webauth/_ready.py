"""Readiness of a web app that has no account yet (the console, a desk).

Such an app starts and serves, so that ``add-user`` can run in its container (a pod that
exits cannot be ``kubectl exec``-ed into), but is not ready: nobody could sign in. Its sign-in
page answers as for a wrong password, so the network learns nothing; only the ops port,
which the orchestrator reaches, says why.
"""

from __future__ import annotations

from collections.abc import Callable

from broker.errors import ConfigError
from broker.ops import OK, Check

__all__ = ["accounts_ready"]


def accounts_ready(accounts: Callable[[], bool]) -> Check:
    """Ready only when ``accounts`` (``UserFile.has_accounts``) says there is one to sign in
    with; a file that has become unreadable is not ready either, with its own reason."""
    try:
        if not accounts():
            return Check(ok=False, reason="no accounts yet")
    except ConfigError:
        return Check(ok=False, reason="accounts file unreadable")
    return OK
