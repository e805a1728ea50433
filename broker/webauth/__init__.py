"""Sign-in and the HTTP edge shared by Accord's web apps (the governance console, the desk).

Accounts in a small file of Argon2id hashes and TOTP secrets (sealed by a ``TotpBox`` under
the owner's keystore), server-side sessions with a CSRF token each, sign-in throttling
without lockout, known-device cookies (each app's cookies named its own), the host names an
app answers to, where it may listen (beyond loopback only over TLS: ``check_exposure``), the
security headers and form bounds every page answers with, and the shell around an app's pages
(``WebPages``, ``add_page_basics``: rendering, redirects, the error page, one stylesheet;
``Flash``: a success or an error said on the next page; ``refused_in_place``: a refused
form's page drawn again with its error).
"""

from broker.webauth._app import WebPages, add_page_basics
from broker.webauth._cookies import CookieNames, cookie_names
from broker.webauth._devices import DeviceCookies, device_key, device_secret_name
from broker.webauth._exposure import HSTS, check_exposure, plain_http_warning, tls_applies
from broker.webauth._flash import Flash, refused_in_place
from broker.webauth._guard import Guard
from broker.webauth._hosts import LOOPBACK_NAMES, HostCheck
from broker.webauth._ready import accounts_ready
from broker.webauth._routes import SignInPages, add_sign_in_routes
from broker.webauth._sessions import Session, SessionStore
from broker.webauth._signin import SignInCheck, check_sign_in
from broker.webauth._throttle import Attempt, SignInThrottle, client_key
from broker.webauth._totpbox import TotpBox
from broker.webauth._users import USERNAME, Account, TotpEnrolment, UserFile, check_username
from broker.webauth._web import (
    CSP,
    MAX_BODY,
    SECURITY_HEADERS,
    bad_body,
    client_host,
    form_field,
    listen,
    loopback,
    read_form,
    server_config,
    stopped_by_sigterm,
    url_host,
)

__all__ = [
    "CSP",
    "HSTS",
    "LOOPBACK_NAMES",
    "MAX_BODY",
    "SECURITY_HEADERS",
    "USERNAME",
    "Account",
    "Attempt",
    "CookieNames",
    "DeviceCookies",
    "Flash",
    "Guard",
    "HostCheck",
    "Session",
    "SessionStore",
    "SignInCheck",
    "SignInPages",
    "SignInThrottle",
    "TotpBox",
    "TotpEnrolment",
    "UserFile",
    "WebPages",
    "accounts_ready",
    "add_page_basics",
    "add_sign_in_routes",
    "bad_body",
    "check_exposure",
    "check_sign_in",
    "check_username",
    "client_host",
    "client_key",
    "cookie_names",
    "device_key",
    "device_secret_name",
    "form_field",
    "listen",
    "loopback",
    "plain_http_warning",
    "read_form",
    "refused_in_place",
    "server_config",
    "stopped_by_sigterm",
    "tls_applies",
    "url_host",
]
