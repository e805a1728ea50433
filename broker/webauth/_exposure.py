"""Whether a web app of Accord's (the console, a desk) may listen where it is told to.

Its pages carry passwords and one-time codes: beyond loopback they may travel only over TLS,
the app's own (``tls_cert``/``tls_key``, which uvicorn serves) or a TLS-terminating proxy's
in front (``tls_terminated_by_proxy``). The same rule as the gateway's
(``broker.gateway.check_gateway``), checked before anything listens, opens a keystore or
reaches Kafka, and said in one line naming the settings to set.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from broker.errors import ConfigError
from broker.webauth._web import loopback

if TYPE_CHECKING:
    from broker.config import SignInSettings

__all__ = ["HSTS", "check_exposure", "plain_http_warning", "tls_applies"]

# A year, the usual; no includeSubDomains: the app's name may share its domain with sites
# that are not Accord's, which are not ours to hold to HTTPS.
HSTS = "max-age=31536000"


def _prefix(app: str) -> str:
    return f"ACCORD_{app.upper()}__"


def _serves_tls(cfg: SignInSettings, app: str) -> bool:
    """Whether the app serves TLS itself; ``ConfigError`` if its files are half given or do
    not load (said now, in one line, not by uvicorn once it starts)."""
    setting = _prefix(app)
    if (cfg.tls_cert is None) != (cfg.tls_key is None):
        raise ConfigError(f"set both {setting}TLS_CERT and {setting}TLS_KEY, or neither")
    if cfg.tls_cert is None or cfg.tls_key is None:
        return False
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cfg.tls_cert, cfg.tls_key)
    except OSError as exc:  # SSLError too; the paths are not secret, the key never shows
        if isinstance(exc, ssl.SSLError):  # its strerror is OpenSSL's, e.g. "[SSL] PEM lib"
            reason = "not a PEM certificate and its unencrypted key, of one pair"
        else:
            reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"{setting}TLS_CERT/TLS_KEY: {cfg.tls_cert} and {cfg.tls_key} do not load ({reason})"
        ) from None
    return True


def check_exposure(cfg: SignInSettings, *, app: str) -> bool:
    """Whether ``app`` (``console``, ``desk``: its settings' prefix) serves TLS itself; or
    ``ConfigError`` if its TLS files do not load, or it would listen beyond loopback with
    neither TLS of its own nor a TLS-terminating proxy declared in front."""
    tls = _serves_tls(cfg, app)
    if not loopback(cfg.host) and not tls and not cfg.tls_terminated_by_proxy:
        setting = _prefix(app)
        raise ConfigError(
            f"the {app} would listen on {cfg.host or '*'}, beyond this machine, without TLS "
            f"(passwords and codes in clear): set {setting}TLS_CERT and {setting}TLS_KEY, "
            f"or, only behind a proxy that terminates TLS, {setting}TLS_TERMINATED_BY_PROXY=true"
        )
    return tls


def tls_applies(cfg: SignInSettings) -> bool:
    """Whether the browser reaches the app over HTTPS, its own or a proxy's: then its pages
    send Strict-Transport-Security (a browser ignores it over plain HTTP anyway)."""
    return (cfg.tls_cert is not None and cfg.tls_key is not None) or cfg.tls_terminated_by_proxy


def plain_http_warning(cfg: SignInSettings, *, app: str) -> str | None:
    """The line said at every start of an app that listens beyond loopback in plain HTTP,
    its TLS left to the proxy in front; None otherwise."""
    if loopback(cfg.host) or (cfg.tls_cert is not None and cfg.tls_key is not None):
        return None
    return (
        f"WARNING: plain HTTP: TLS is left to the proxy in front "
        f"({_prefix(app)}TLS_TERMINATED_BY_PROXY); nothing else may reach this port"
    )
