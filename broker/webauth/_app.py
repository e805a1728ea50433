"""What every web app of Accord's (the governance console, a desk) has around its pages,
written once: rendering with the session's user, CSRF token and flash messages; the security
headers, the allowed host names and the bound on form bodies on every response; a plain page,
logged by type, for anything unexpected; a page, not JSON, for an address that is no page
(404) or a form's address opened (405); the stylesheet (the shared one, then the app's own
rules); and the session-timeout warning's script, keep-alive and status (:mod:`._timeout`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import ChoiceLoader, Environment, PackageLoader, select_autoescape
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from structlog.typing import FilteringBoundLogger

from broker.errors import StoreUnavailable
from broker.webauth._bounce import bounce_location, form_page, typed_something
from broker.webauth._exposure import HSTS
from broker.webauth._flash import Flash, page_messages, template_globals
from broker.webauth._guard import Guard
from broker.webauth._hosts import printable_host
from broker.webauth._sessions import Session
from broker.webauth._timeout import add_timeout_routes, page_of, session_timeout
from broker.webauth._web import SECURITY_HEADERS, bad_body, read_form

__all__ = ["WebPages", "add_page_basics"]

_UNKNOWN_HOST = "This server does not answer to that host name.\n"

# The request being answered, set by the edge (add_page_basics), so that a refusal drawn
# anywhere (WebPages.refused is not given the request) keeps a signed-in person's header.
_REQUEST: ContextVar[Request | None] = ContextVar("accord_request", default=None)


class WebPages:
    """An app's sessions, templates (its package's ``templates/``, then the shared ones in
    ``broker/webauth/templates``) and responses.

    ``page_context`` is what the app adds to every page it renders (a desk: its party).
    """

    def __init__(self, guard: Guard, package: str) -> None:
        self.guard = guard
        # The pages and sign-in use these by name.
        self.sessions = guard.sessions
        self.throttle = guard.throttle
        self.templates = Environment(
            # The app's own templates, then those every app shares (_messages.html).
            loader=ChoiceLoader(
                [PackageLoader(package, "templates"), PackageLoader("broker.webauth", "templates")]
            ),
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.globals.update(template_globals())

    def page_context(self) -> dict[str, Any]:
        return {}

    def session(self, request: Request) -> Session | None:
        return self.guard.session(request)

    def render(
        self,
        name: str,
        session: Session | None,
        *,
        status: int = 200,
        errors: Sequence[Flash] = (),
        **context: Any,
    ) -> HTMLResponse:
        """``errors``: this page's own (a form drawn again), after those the session held."""
        flash = list(session.flash) if session else []
        if session:
            session.flash.clear()
        page = self.templates.get_template(name).render(
            user=session.user if session else None,
            csrf=session.csrf if session else "",
            session_timeout=session_timeout(self.guard, session),
            **page_messages(flash, errors),
            **self.page_context(),
            **context,
        )
        response = HTMLResponse(page, status_code=status)
        if session is not None:
            self.set_cookie(response, session)
        return response

    def set_cookie(self, response: Response, session: Session) -> None:
        self.guard.set_cookie(response, session)

    def redirect(self, to: str, session: Session | None = None) -> RedirectResponse:
        response = RedirectResponse(to, status_code=303)
        if session is not None:
            self.set_cookie(response, session)
        return response

    def error_page(
        self,
        session: Session | None,
        *,
        title: str,
        message: str = "",
        status: int,
        template: str = "error.html",
        headers: Mapping[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:
        """An error page; for a signed-in ``session``, with the header, Sign out form and
        timeout script of every page. Its flash is neither shown nor taken, and its idle
        clock is not restarted here."""
        shown = session if session is not None and session.user is not None else None
        page = self.templates.get_template(template).render(
            user=shown.user if shown else None,
            csrf=shown.csrf if shown else "",
            session_timeout=session_timeout(self.guard, shown),
            **page_messages(()),
            **self.page_context(),
            title=title,
            message=message,
            **context,
        )
        return HTMLResponse(page, status_code=status, headers=headers)

    def refused(
        self, why: str, *, status: int = 403, title: str = "Refused", page_error: bool = False
    ) -> HTMLResponse:
        """``why``, said on the error page, under the header of whoever is signed in.
        ``title``: the page's title and heading; "Refused" is for a real refusal, a page
        that is not there says so ("Record not found"). ``page_error``: the page says that
        something failed (not that the request was refused or names nothing here), so its
        title says "Error: ..." as a form's error summary's does."""
        request = _REQUEST.get()
        session = None if request is None else self.guard.session(request, touch=False)
        return self.error_page(
            session, title=title, message=why, status=status, page_error=page_error
        )

    def stale_form(self, request: Request, *, note: str = "") -> Response:
        """The answer to a form whose token is not the session's (a page loaded before signing
        out and in again, or in another tab since; or a forged one): 403, nothing done, and
        a link back to the form's page. Signed out, to sign in instead (the edge says there
        whether typed text was lost). What was posted is never repeated: the page says that
        it was not saved, so that the person copies it back from the browser if it kept it.
        ``note``: what the page says first instead of that advice (a desk's re-send, which
        must not be started afresh)."""
        session = self.guard.session(request, touch=False)
        if session is None or session.user is None:
            return self.redirect("/login")
        return self.error_page(
            session, title="Form from an earlier session", status=403,
            template="stale_form.html", back=form_page(request) or "/", note=note,
            page_error=True,
        )  # fmt: skip


async def _losing_typed_text(
    request: Request, guard: Guard, already_sent: Callable[[Any], bool] | None
) -> bool:
    """Whether ``request`` is a form post, with text typed into it, that no session will
    take (so the page will send it to sign in). Only the fact is kept, never the text. The
    body read here is the one the page reads (Starlette hands it on)."""
    if request.method != "POST" or request.url.path in ("/login", "/logout"):
        return False
    session = guard.session(request, touch=False)  # the page itself touches it
    if session is not None and session.user is not None:
        return False
    try:
        form = await read_form(request)
    except HTTPException:  # a form beyond the bounds: the page refuses it, nothing is lost
        return False
    return typed_something(form, already_sent=already_sent)


def _not_a_page(exc: HTTPException, name: str) -> tuple[str, str] | None:
    """The error page's title and message for a 404 or 405; None for any other status. Neither
    repeats anything of the request's: an address can hold what someone typed."""
    if exc.status_code == 404:
        return "Page not found", (
            "There is no page at this address. If you typed it, check it; if you followed a "
            "link or a bookmark, it may be out of date."
        )
    if exc.status_code == 405:
        return "This address is not a page", (
            f"This address only takes a form sent from one of the {name}'s pages, so it cannot "
            "be opened, reloaded or bookmarked. Nothing was done."
        )
    return None


def add_page_basics(
    app: FastAPI,
    pages: WebPages,
    *,
    name: str,
    log: FilteringBoundLogger,
    css: str = "",
    api_paths: Sequence[str] = (),
    already_sent: Callable[[Any], bool] | None = None,
    hsts: bool = False,
) -> None:
    """Host names, headers, body bound and error pages on ``app``; ``GET /static/<name>.css``
    serves the shared stylesheet followed by ``css``, the app's own rules. ``api_paths``
    (``/metrics``) answer a 404 or 405 as before, in JSON, for the programs that read them;
    every other path with a page. ``already_sent``: which of the app's forms, posted with no
    session, lost nothing typed, their text having gone already (the sign-in page then does
    not ask for it again). ``hsts``: the browser reaches the app over HTTPS (its own or a
    proxy's: :func:`broker.webauth.tls_applies`), so every answer says to keep to HTTPS."""
    headers = {**SECURITY_HEADERS, **({"Strict-Transport-Security": HSTS} if hsts else {})}
    stylesheet = resources.files("broker.webauth").joinpath("static/accord.css").read_text("utf-8")
    if css:
        stylesheet += "\n" + css

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        host = request.headers.get("host")
        if not pages.guard.hosts.allows(host):
            # Before anything else: a DNS-rebinding page gets no page, no session, no form.
            log.warning(f"{name}_host_refused", host=printable_host(host))
            response: Response = Response(_UNKNOWN_HOST, status_code=400, media_type="text/plain")
        elif request.method == "POST" and (refusal := bad_body(request)) is not None:
            response = refusal
        else:
            lost = await _losing_typed_text(request, pages.guard, already_sent)
            asked = _REQUEST.set(request)
            try:
                with page_of(request):
                    response = await call_next(request)
            finally:
                _REQUEST.reset(asked)
            if (
                response.status_code == 303
                and response.headers.get("location") == "/login"
                and request.url.path not in ("/login", "/logout")
            ):
                # A page sent to sign in: back to it afterwards (and say what was lost).
                response.headers["location"] = bounce_location(request, lost=lost)
        for header, value in headers.items():
            response.headers.setdefault(header, value)
        return response

    @app.exception_handler(HTTPException)
    async def not_a_page(request: Request, exc: HTTPException) -> Response:
        path = request.url.path
        said = _not_a_page(exc, name)
        if said is None or any(path == p or path.startswith(f"{p}/") for p in api_paths):
            return await http_exception_handler(request, exc)
        title, message = said
        # Signed in, the header as on every page; but the session is only looked at, not
        # touched, and its flash stays for the page it was meant for (a favicon's 404 can
        # come between a form's redirect and the page that says it worked).
        return pages.error_page(
            pages.guard.session(request, touch=False), title=title, message=message,
            status=exc.status_code, headers=exc.headers,
        )  # fmt: skip

    add_timeout_routes(app, pages.guard)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        # Starlette answers this outside the middleware, so the headers are set here too. The
        # log names the exception's type and the route's template only: its message or
        # traceback could hold what the page was showing, and a concrete path whatever a
        # person typed into the address bar (an NHS number in place of an id).
        route = getattr(request.scope.get("route"), "path", "unmatched")
        if isinstance(exc, ClientDisconnect):  # gone mid-body (a slow one closed at the
            # request deadline, broker._http_guard): nobody to answer, no fault here
            log.info(f"{name}_client_gone", route=route)
            return Response(status_code=400)
        try:
            session = pages.guard.session(request, touch=False)
        except Exception:  # noqa: BLE001  # whatever broke may be the look-up: drawn signed out
            session = None
        if isinstance(exc, StoreUnavailable):  # its database restarting: says so, not a bug
            log.warning(f"{name}_store_unavailable", route=route)
            with page_of(request):
                return pages.error_page(
                    session, title="Database unavailable", status=503,
                    headers={**headers, "Retry-After": "10"},
                    message=f"The {name} cannot reach its database, so this page cannot be "
                    "shown; a form you sent may not have been recorded: check before sending "
                    "it again. Try again in a minute; if it goes on, ask whoever runs the "
                    f"{name} to check its database.",
                )  # fmt: skip
        log.error(f"{name}_error", route=route, error=type(exc).__name__)
        with page_of(request):  # outside the edge: a POST's page returns to its form's
            return pages.error_page(
                session, title="Something went wrong", status=500, headers=headers,
                message=f"The {name} could not show this page. The error has been logged.",
            )  # fmt: skip

    @app.get(f"/static/{name}.css")
    async def stylesheet_route() -> Response:
        return Response(stylesheet, media_type="text/css", headers={"Cache-Control": "max-age=300"})
