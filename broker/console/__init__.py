"""The governance console: what IG officers use to answer "who has seen data about this child".

A FastAPI application with server-rendered pages (one script only, the session-timeout
warning, which nothing needs: every page works without it): sign-in for IG officers
(Argon2id-hashed accounts made with ``accord console add-user``, a TOTP code as a second
factor whose secret is sealed under the console's keystore, throttling without lockout),
server-side sessions with idle and absolute expiry, CSRF tokens on every form, and a strict
Content-Security-Policy.
Pages: a dashboard (decisions per day by outcome, overrides pending, quarantine), a child's
disclosure log found by NHS number, the override review queue, agreements with their
validity and use, and the audit chains' status with on-demand verification.

Every look-up is itself written to the audit log as a ``console_query`` record naming the
officer and the subject keys shown, *before* the page renders; no record, no data.
"""

from broker.console._app import create_app
from broker.console._deps import ConsoleDeps
from broker.console._instance import DEMO_INSTANCE, check_instance, console_chain
from broker.console._serve import ConsoleRun, load_console_policy, run_console
from broker.webauth import TotpBox, UserFile, check_username

__all__ = [
    "DEMO_INSTANCE",
    "ConsoleDeps",
    "ConsoleRun",
    "TotpBox",
    "UserFile",
    "check_instance",
    "check_username",
    "console_chain",
    "create_app",
    "load_console_policy",
    "run_console",
]
