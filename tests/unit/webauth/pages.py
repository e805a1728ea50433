"""What every error page of the console's and the desk's must show a signed-in person, and the
page both say a form from an earlier session with: shared by their tests."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

from fastapi.testclient import TestClient

from tests.unit.webauth.forms import posted_form, value_of


def signed_in_header(page: str, user: str) -> str:
    """The page's Sign out form's token, once the page is seen to have the header of every
    signed-in page: who is signed in, Sign out, and the timeout warning's script."""
    assert f'Signed in as <strong id="signed-in-user">{user}</strong>' in page
    assert ">Sign out</button>" in page
    [token] = value_of(posted_form(page, "/logout"), "csrf")
    assert token, "the Sign out form has no token"
    tag = re.search(r'<script src="/static/session\.js" defer ([^>]*)>', page)
    assert tag is not None, "no session-timeout script"
    assert f'data-csrf="{token}"' in tag.group(1)
    return token


def signed_out_header(page: str) -> None:
    """The page says nobody is signed in: no name, no Sign out, no timeout script."""
    assert "Signed in as" not in page
    assert "Sign out" not in page
    assert "/static/session.js" not in page


def stale_form_page(page: str, *, back: str, typed: Iterable[str] = ()) -> None:
    """The shared page for a form from an earlier session: nothing recorded or sent, what was
    typed not saved (and none of it repeated), a link back to the form's page."""
    assert "<h1>Form from an earlier session</h1>" in page
    assert "nothing was recorded or sent" in page
    assert "Anything you typed on it was not saved" in page
    assert f'<a href="{back}" id="stale-form-back">Back to the form\'s page</a>' in page
    assert "Missing or wrong form token" not in page
    for text in typed:
        assert text not in page, "typed text repeated"


def sign_out_once_ended(
    client: TestClient, old: str, end: Callable[[], object], sign_in_form: Mapping[str, str]
) -> None:
    """``end`` ends the session a page's Sign out token ``old`` is from; then that Sign out
    goes to the sign-in page saying so, not to a bare *Refused* without a header (at a shared
    computer it could pass for still being signed in), and a sign-in form opened meanwhile
    (another tab) still signs in with ``sign_in_form``."""
    end()
    [other_tab] = value_of(posted_form(client.get("/login").text, "/login"), "csrf")
    r = client.post("/logout", data={"csrf": old}, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/login?out=1")
    page = client.get("/login?out=1")
    assert "You have signed out." in page.text
    assert "Refused" not in page.text
    signed_out_header(page.text)
    form = {**sign_in_form, "csrf": other_tab}
    assert client.post("/login", data=form, follow_redirects=False).status_code == 303
