"""A request sent to the sign-in page: where to return after signing in, and what to say.

A page whose session has gone (idle, or the app restarted) answers with a redirect to
``/login``; the edge (:func:`broker.webauth.add_page_basics`) turns it into
``/login?next=<page>`` so that signing in again returns to the page the person was on. The
page is only ever a same-site path, checked again wherever it is read: a ``next`` that could
leave the site (``//host``, ``/\\host``, a scheme, its percent-encoded forms) is an open
redirect, and is dropped. For a POST the page is the form's own page, never the POST
endpoint. What a bounced form held is never kept (it may be personal data): the sign-in page
only says that it was not saved.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

from starlette.requests import Request

__all__ = ["FREE_TEXT", "bounce_location", "form_page", "safe_next", "typed_something"]

_MAX_NEXT = 512
# A single leading slash, then no backslash (browsers read it as a slash), no control
# characters, nothing outside printable ASCII (a page's own links are ASCII).
_PATH = re.compile(r"/(?![/\\])[!-\[\]-~]*")
_OWN = ("/login", "/logout")  # never a return target: a loop, or an undoing
# The fields a person types into on the apps' forms (the desk's reasons, summaries and
# searches, the console's subject look-up and override reference).
FREE_TEXT = frozenset(
    {"reason", "summary", "reference", "nhs_number", "given_name", "family_name", "dob",
     "postcode"}
)  # fmt: skip


def safe_next(value: str | None) -> str | None:
    """``value`` if it is a same-site path to return to after signing in, else None."""
    if not value or len(value) > _MAX_NEXT or not _PATH.fullmatch(value):
        return None
    decoded = unquote(value)
    if decoded.startswith(("//", "/\\")) or any(c < " " or c == "\x7f" for c in decoded):
        return None
    path = urlsplit(value).path
    if path in _OWN or any(path.startswith(own + "/") for own in _OWN):
        return None
    return value


def form_page(request: Request) -> str | None:
    """The page a request was made from: a GET's own address; a POST's form's page (its
    Referer's path if same-origin, else the POST's path without its last segment, or the
    same path, whose GET is the form, when it has only one)."""
    path = request.url.path
    if request.method in ("GET", "HEAD"):
        query = request.url.query
        return safe_next(f"{path}?{query}" if query else path)
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc and referer.netloc == request.headers.get("host"):
        page = safe_next(referer.path + (f"?{referer.query}" if referer.query else ""))
        if page is not None and urlsplit(page).path != path:
            return page
    parent = path.rstrip("/").rsplit("/", 1)[0]
    return safe_next(parent or path)


def typed_something(form: Any, *, already_sent: Callable[[Any], bool] | None = None) -> bool:
    """Whether a posted form held text a person typed (whose loss is worth saying).
    ``already_sent``, the app's own: True for a form whose text went already, so nothing is
    lost and "type it again" would be wrong (a desk's Record it: a second referral)."""
    if already_sent is not None and already_sent(form):
        return False
    return any(isinstance(v, str) and v.strip() for k, v in form.multi_items() if k in FREE_TEXT)


def bounce_location(request: Request, *, lost: bool) -> str:
    """Where a request sent to ``/login`` goes instead: the sign-in page, told the page to
    return to and whether typed text was lost."""
    query: dict[str, str] = {}
    page = form_page(request)
    if page is not None and page != "/":
        query["next"] = page
    if lost:
        query["lost"] = "1"
    return "/login?" + urlencode(query) if query else "/login"
