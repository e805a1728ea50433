"""The console's web behaviour: sign-in, sessions, CSRF, headers, and every look-up audited."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from broker.audit import AuditRecord, KeystoreAuditVerifier
from broker.console import UserFile
from broker.governance import AuditStore, disclosure_log
from broker.keys import FileKeyStore
from broker.linkage import Linker
from broker.policy import load_bundle
from tests.unit.audit.conftest import CHILD_NHS, PARENT_NHS, index_records
from tests.unit.audit.test_encompass import (
    DEADLINE,
    SCHOOL_A,
    SCHOOL_B,
    EncompassChain,
    encompass_notice_data,
)
from tests.unit.console.conftest import (
    OFFICER,
    PASSWORD,
    Clock,
    IndexingSink,
    csrf_of,
    sign_in,
)

PAGES = ("/", "/subjects", "/overrides", "/agreements", "/chains")
FORMS = ("/subjects", "/overrides/review", "/chains/verify")


@pytest.mark.parametrize("page", PAGES)
def test_a_page_without_a_session_redirects_to_sign_in(client: TestClient, page: str) -> None:
    """...and to return to the page afterwards (the home page needs no saying)."""
    r = client.get(page, follow_redirects=False)
    back = "" if page == "/" else "?next=" + page.replace("/", "%2F")
    assert (r.status_code, r.headers["location"]) == (303, "/login" + back)


@pytest.mark.parametrize("form", FORMS)
def test_a_form_posted_without_a_session_is_refused(
    client: TestClient, sink: IndexingSink, form: str
) -> None:
    """...and sent to sign in, to come back to the form's page."""
    r = client.post(
        form, data={"nhs_number": CHILD_NHS, "purpose": "complaint", "csrf": "x"},
        follow_redirects=False,
    )  # fmt: skip
    page = {"/subjects": "/subjects", "/overrides/review": "/overrides"}.get(form, "/chains")
    location = "/login?next=" + page.replace("/", "%2F") + "&lost=1"  # an NHS number was typed
    assert (r.status_code, r.headers["location"]) == (303, location)
    assert sink.records == []


def test_a_wrong_password_is_refused_and_gives_no_session(client: TestClient) -> None:
    token = csrf_of(client.get("/login").text)
    r = client.post(
        "/login", data={"username": OFFICER, "password": "wrong password!", "csrf": token}
    )
    assert r.status_code == 401
    assert "Sign-in failed" in r.text
    assert client.get("/", follow_redirects=False).status_code == 303


def test_an_unknown_user_gets_the_same_answer_as_a_wrong_password(client: TestClient) -> None:
    token = csrf_of(client.get("/login").text)
    unknown = client.post(
        "/login", data={"username": "nobody", "password": PASSWORD, "csrf": token}
    )
    wrong = client.post(
        "/login", data={"username": OFFICER, "password": "nope nope nope", "csrf": token}
    )
    assert unknown.status_code == wrong.status_code == 401
    strip = re.compile(r'name="csrf" value="[^"]+"')
    assert strip.sub("", unknown.text) == strip.sub("", wrong.text)


def test_sign_in_needs_the_forms_csrf_token(client: TestClient) -> None:
    client.get("/login")
    r = client.post("/login", data={"username": OFFICER, "password": PASSWORD, "csrf": "forged"})
    assert r.status_code == 403
    assert client.get("/", follow_redirects=False).status_code == 303


def test_signing_in_replaces_the_session_id(client: TestClient) -> None:
    client.get("/login")
    before = client.cookies["accord_console_session"]
    sign_in(client)
    assert client.cookies["accord_console_session"] != before


def test_sessions_expire_when_idle(client: TestClient, clock: Clock) -> None:
    sign_in(client)
    clock.advance(minutes=14)
    assert client.get("/subjects").status_code == 200
    clock.advance(minutes=15)
    assert client.get("/subjects", follow_redirects=False).status_code == 303


def test_signing_out_ends_the_session(client: TestClient) -> None:
    token = sign_in(client)
    cookie = client.cookies["accord_console_session"]
    assert client.post("/logout", data={"csrf": token}, follow_redirects=False).status_code == 303
    client.cookies.set("accord_console_session", cookie)  # replaying the old cookie gets nowhere
    assert client.get("/", follow_redirects=False).status_code == 303


def test_a_removed_account_loses_its_session(client: TestClient, users: UserFile) -> None:
    sign_in(client)
    users.remove(OFFICER)
    assert client.get("/", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("page", [*PAGES, "/login"])
def test_every_page_allows_only_its_own_scripts_and_forbids_framing_caching_and_referrers(
    client: TestClient, page: str
) -> None:
    sign_in(client)
    h = client.get(page).headers
    csp = [d.strip() for d in h["content-security-policy"].split(";")]
    # Scripts from the console's own address (the session-timeout warning) and nothing else:
    # no inline script, no eval, no other site; the script may call back to this address only.
    assert csp == [
        "default-src 'none'", "script-src 'self'", "connect-src 'self'", "style-src 'self'",
        "img-src 'self'", "form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'",
    ]  # fmt: skip
    assert h["cache-control"] == "no-store"
    assert h["referrer-policy"] == "no-referrer"
    assert h["x-content-type-options"] == "nosniff"


def test_the_session_cookie_is_httponly_strict_and_secure_off_loopback(
    make_client: Callable[..., TestClient], indexed: list[AuditRecord]
) -> None:
    local = make_client().get("/login").headers["set-cookie"].lower()
    assert "httponly" in local
    assert "samesite=strict" in local
    assert "secure" not in local
    exposed = make_client(host="0.0.0.0", allowed_hosts=["127.0.0.1"])  # noqa: S104  # under test
    cookie = exposed.get("/login").headers["set-cookie"].lower()
    assert "; secure" in cookie
    assert cookie.startswith("__host-accord_console_session=")


PROXY = {"trusted_proxies": "127.0.0.1"}


@pytest.mark.parametrize(
    ("settings", "secure"),
    [
        ({}, False),  # loopback, no proxy: plain HTTP to 127.0.0.1 must work
        ({"forwarded_hops": 1, **PROXY}, True),  # nginx with TLS in front of 127.0.0.1:8765
        ({"forwarded_hops": 1, **PROXY, "secure_cookies": False}, False),  # plain-HTTP proxy
        ({"secure_cookies": True}, True),
        ({"tls_terminated_by_proxy": True}, True),  # a TLS proxy declared, on loopback
        ({"tls_cert": "/c.pem", "tls_key": "/k.pem"}, True),  # its own TLS, on loopback
    ],
)
def test_the_session_cookie_is_secure_behind_a_proxy_even_on_loopback(
    make_client: Callable[..., TestClient],
    indexed: list[AuditRecord],
    settings: dict[str, object],
    secure: bool,
) -> None:
    cookie = make_client(**settings).get("/login").headers["set-cookie"]
    assert ("; secure" in cookie.lower()) is secure
    # __Host-: Secure, Path=/, no Domain, so no sibling host can set or shadow it.
    assert cookie.startswith("__Host-accord_console_session=") is secure
    assert "domain=" not in cookie.lower()
    assert "path=/" in cookie.lower()


def test_a_subject_search_without_the_csrf_token_is_refused_and_not_run(
    client: TestClient, sink: IndexingSink
) -> None:
    sign_in(client)
    before = len(sink.records)
    r = client.post("/subjects", data={"nhs_number": CHILD_NHS, "purpose": "complaint"})
    assert r.status_code == 403
    assert len(sink.records) == before


def test_finding_a_child_shows_their_disclosure_log_and_audits_the_look_up(
    client: TestClient, sink: IndexingSink, store: AuditStore, linker: Linker
) -> None:
    token = sign_in(client)
    with capture_logs() as logs:
        r = client.post(
            "/subjects",
            data={"nhs_number": CHILD_NHS, "purpose": "subject_access_request", "csrf": token},
        )
    assert r.status_code == 200
    key = linker.from_nhs_number(CHILD_NHS)
    rows = re.findall(r"<tr class=\"(decision|delivered|opened) ", r.text)
    expected = disclosure_log(store, key)
    assert rows == [e.kind for e in expected]
    # e1 to coord and hub-a, e2 to school-1, their deliveries, and coord opening e1
    assert len(rows) == 6
    for e in expected:
        assert e.event_id in r.text
    [query] = [q for q in sink.queries() if q.data["page"] == "subject"]
    assert query.subject_keys == (key,)
    assert query.data == {"officer": OFFICER, "page": "subject",
                          "detail": {"purpose": "subject_access_request"}}  # fmt: skip
    # The NHS number went no further than the subject key.
    assert all(CHILD_NHS not in r.to_bytes().decode() for r in sink.records)
    assert all(CHILD_NHS not in str(entry) for entry in logs)
    assert CHILD_NHS not in r.text


def test_a_second_look_up_lists_the_first(client: TestClient, sink: IndexingSink) -> None:
    token = sign_in(client)
    data = {"nhs_number": CHILD_NHS, "purpose": "complaint", "csrf": token}
    first = client.post("/subjects", data=data)
    assert 'id="lookups"' not in first.text
    again = client.post("/subjects", data=dict(data, purpose="audit_sample"))
    assert re.search(r"<li>[^<]*ig\.jo from the console \(complaint\)</li>", again.text)


def test_a_child_with_no_decisions_gets_an_empty_log_not_someone_elses(
    client: TestClient, sink: IndexingSink
) -> None:
    token = sign_in(client)
    r = client.post("/subjects", data={"nhs_number": "9990000026", "purpose": "complaint",
                                       "csrf": token})  # fmt: skip
    assert r.status_code == 200
    assert 'id="no-entries"' in r.text
    assert "<code>e1</code>" not in r.text


@pytest.mark.parametrize(
    ("nhs", "purpose", "message"),
    [
        ("12345", "complaint", "NHS number:"),
        ("9997017464", "complaint", "NHS number:"),  # wrong check digit
        (CHILD_NHS, "curiosity", "Choose why"),
    ],
)
def test_a_bad_search_is_explained_and_nothing_is_looked_up(
    client: TestClient, sink: IndexingSink, nhs: str, purpose: str, message: str
) -> None:
    token = sign_in(client)
    r = client.post("/subjects", data={"nhs_number": nhs, "purpose": purpose, "csrf": token})
    assert r.status_code == 400
    assert message in r.text
    assert nhs not in r.text
    assert [q for q in sink.queries() if q.data["page"] == "subject"] == []


def test_when_the_audit_log_cannot_be_written_the_console_shows_no_data(
    client: TestClient, sink: IndexingSink, linker: Linker
) -> None:
    token = sign_in(client)
    sink.down = True
    r = client.post("/subjects", data={"nhs_number": CHILD_NHS, "purpose": "complaint",
                                       "csrf": token})  # fmt: skip
    assert r.status_code == 503
    assert linker.from_nhs_number(CHILD_NHS) not in r.text
    assert "<code>e1</code>" not in r.text
    for page in ("/", "/overrides", "/agreements", "/chains"):
        assert client.get(page).status_code == 503
    detail = client.get("/overrides/decision?event=e2&recipient=school-1")
    assert detail.status_code == 503
    assert 'id="override-detail"' not in detail.text
    assert "school-1" not in detail.text
    verified = client.post("/chains/verify", data={"csrf": token})
    assert verified.status_code == 503
    assert 'id="verify-result"' not in verified.text
    assert "intact" not in verified.text


@pytest.mark.parametrize("page", ["/", "/overrides", "/agreements", "/chains"])
def test_every_data_page_is_audited_with_the_officer(
    client: TestClient, sink: IndexingSink, page: str
) -> None:
    sign_in(client)
    assert client.get(page).status_code == 200
    [query] = sink.queries()
    assert query.data["officer"] == OFFICER
    assert query.data["page"] == (page.strip("/") or "dashboard")


def test_the_override_queue_names_whose_records_were_shown(
    client: TestClient, sink: IndexingSink, linker: Linker
) -> None:
    sign_in(client)
    r = client.get("/overrides")
    assert 'data-event="e2" data-recipient="school-1"' in r.text
    [query] = sink.queries()
    assert query.subject_keys == (linker.from_nhs_number(CHILD_NHS),)


def test_reviewing_an_override_writes_the_review_and_clears_the_queue(
    client: TestClient, sink: IndexingSink, store: AuditStore
) -> None:
    token = sign_in(client)
    r = client.post("/overrides/review", data={"event_id": "e2", "recipient": "school-1",
                                               "finding": "not-justified", "csrf": token,
                                               "reference": "IG-2026-114"})  # fmt: skip
    assert r.status_code == 200  # followed the redirect back to the queue
    assert "recorded in the audit log (console:test#" in r.text
    assert "once the indexer" not in r.text
    assert 'id="no-pending"' in r.text
    [review] = [x for x in sink.records if x.kind.value == "override_reviewed"]
    assert (review.event_id, review.party) == ("e2", "school-1")
    assert review.data["reviewed_by"] == OFFICER
    assert set(review.data) == {"reviewed_by", "finding", "reference", "decision"}  # no text
    stored = store.review_of("e2", "school-1")
    assert stored is not None
    assert (stored.finding, stored.reference, stored.note) == ("not_justified", "IG-2026-114", "")


def test_a_review_the_index_has_not_caught_up_with_says_so_and_stays_queued(
    client: TestClient, sink: IndexingSink, store: AuditStore
) -> None:
    token = sign_in(client)
    sink.lagging = True
    r = client.post("/overrides/review", data={"event_id": "e2", "recipient": "school-1",
                                               "finding": "justified", "csrf": token})  # fmt: skip
    assert "recorded in the audit log (console:test#" in r.text
    assert "It will leave this queue once the indexer has read it." in r.text
    assert 'data-event="e2" data-recipient="school-1"' in r.text
    assert [x.kind.value for x in sink.records].count("override_reviewed") == 1
    assert store.review_of("e2", "school-1") is None


@pytest.mark.parametrize(
    ("event_id", "form", "why"),
    [
        ("e2", {}, "give justified or not-justified"),
        ("e2", {"finding": "justified", "reference": "Amy Hollis, DA incident"}, "never a note"),
        ("e1", {"finding": "justified"}, "no safeguarding override"),
    ],
)
def test_a_review_that_cannot_stand_is_not_recorded(
    client: TestClient, sink: IndexingSink, event_id: str, form: dict[str, str], why: str
) -> None:
    token = sign_in(client)
    r = client.post("/overrides/review", data={"event_id": event_id, "recipient": "school-1",
                                               **form, "csrf": token})  # fmt: skip
    assert " not recorded: " in r.text
    assert why in r.text
    assert "--" not in r.text.split(" not recorded: ")[1][:20]  # the form has no options
    assert [x for x in sink.records if x.kind.value == "override_reviewed"] == []


def test_the_dashboard_charts_the_indexed_decisions(
    client: TestClient, store: AuditStore, clock: Clock
) -> None:
    sign_in(client)
    r = client.get("/")
    bars = re.findall(r'<rect class="o-([a-z_]+)"[^>]*><title>([^<]+)</title>', r.text)
    # worker_chain decided 2 shared, 1 not shared and 1 override, all on T0's day.
    day = clock.now.date().isoformat()
    assert sorted(bars) == sorted([
        ("shared", f"{day}: 2 shared"), ("shared_override", f"{day}: 1 shared_override"),
        ("not_shared", f"{day}: 1 not_shared"), ("quarantine", "invalid-event: 1"),
    ])  # fmt: skip
    assert re.search(r'id="decisions-total">4<', r.text)
    assert re.search(r'id="overrides-pending">1<', r.text)
    clock.advance(days=20)  # the window moves on: nothing in the last 14 days
    sign_in(client)  # (the old session expired)
    assert re.search(r'id="decisions-total">0<', client.get("/").text)


def test_the_dashboard_says_one_of_a_thing_in_the_singular(client: TestClient) -> None:
    """It used to say '1 overrides awaiting review'; none and many stay plural."""
    sign_in(client)
    page = client.get("/").text
    assert re.search(r'id="overrides-pending">1</span> override awaiting review<', page)
    assert re.search(r'id="quarantine-total">1</span> record quarantined<', page)
    assert re.search(r'id="decisions-total">4</span> decisions in 14 days<', page)
    assert re.search(r'id="encompass-late">0</span> Encompass notices read late', page)


def test_the_agreements_page_shows_validity_expiry_and_use(
    make_client: Callable[..., TestClient], indexed: list[AuditRecord], clock: Clock
) -> None:
    policy = load_bundle(Path(__file__).parents[3] / "policies")
    client = make_client(policy=policy)
    first = policy.bundle.agreements[0]
    clock.now = clock.now.replace(year=first.valid_until.year, month=first.valid_until.month,
                                  day=first.valid_until.day) - timedelta(days=30)  # fmt: skip
    sign_in(client)
    r = client.get("/agreements")
    assert r.status_code == 200
    for a in policy.bundle.agreements:
        assert a.id in r.text
    assert "ends in 30 days" in r.text
    assert policy.version in r.text


@pytest.mark.parametrize("in_a_thread", [False, True])
def test_verifying_the_chains_from_the_console(
    make_client: Callable[..., TestClient], indexed: list[AuditRecord], store: AuditStore,
    sink: IndexingSink, in_a_thread: bool,
) -> None:  # fmt: skip
    """Inline, or in a thread on a second connection to the index (as the server runs it)."""
    client = make_client(reopen=in_a_thread)
    token = sign_in(client)
    r = client.post("/chains/verify", data={"csrf": token})
    assert re.search(r'id="verify-result">audit log intact \(sqlite\)', r.text)
    store._q("UPDATE audit_records SET body = REPLACE(body, 'early_help', 'early_hulp') "  # type: ignore[attr-defined]  # tampering on purpose
             "WHERE chain = 'worker:w1' AND seq = 2")  # fmt: skip
    r = client.post("/chains/verify", data={"csrf": token})
    assert "Verification failed" in r.text
    assert "worker:w1" in r.text
    # Each run is audited with what it found before the page that shows it (after the
    # redirect, itself a look-up of the chain page).
    assert [q.data["page"] for q in sink.queries()] == [
        "chains.verify", "chains", "chains.verify", "chains"
    ]  # fmt: skip


def test_no_personal_value_reaches_the_console_log_or_pages(
    client: TestClient, sink: IndexingSink
) -> None:
    token = sign_in(client)
    with capture_logs() as logs:
        pages = [client.get(p).text for p in PAGES]
        for nhs in (CHILD_NHS, PARENT_NHS):
            pages.append(client.post("/subjects", data={"nhs_number": nhs, "purpose": "complaint",
                                                        "csrf": token}).text)  # fmt: skip
    for nhs in (CHILD_NHS, PARENT_NHS):
        assert not any(nhs in p for p in pages)
        assert not any(nhs in str(e) for e in logs)
        assert not any(nhs in r.to_bytes().decode() for r in sink.records)
    assert PASSWORD not in str(logs)


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({"content-type": "application/json"}, b"{}", 415),
        ({"content-type": "multipart/form-data; boundary=x"}, b"--x--", 415),
        ({"content-type": "application/x-www-form-urlencoded"}, b"a=" + b"x" * 20_000, 413),
    ],
)
def test_posts_that_are_not_small_plain_forms_are_refused_unread(
    client: TestClient, headers: dict[str, str], body: bytes, status: int
) -> None:
    assert client.post("/login", content=body, headers=headers).status_code == status


def test_resetting_a_password_ends_the_old_sessions(client: TestClient, users: UserFile) -> None:
    sign_in(client)
    users.add(OFFICER, "a brand new passphrase", replace=True)
    assert client.get("/", follow_redirects=False).status_code == 303
    sign_in(client, password="a brand new passphrase")
    assert client.get("/").status_code == 200


def test_the_dashboard_counts_a_chain_broken_at_its_first_record(
    client: TestClient, store: AuditStore
) -> None:
    from broker.governance._store import ChainHead, IndexBatch

    batch = IndexBatch(topic="accord.audit")
    batch.heads["worker:bad"] = ChainHead("worker:bad", -1, "0" * 64, broken_seq=0, error="x")
    store.apply(batch)
    sign_in(client)
    assert re.search(r'id="chains-broken">1<', client.get("/").text)


def test_probing_the_review_form_is_itself_audited(client: TestClient, sink: IndexingSink) -> None:
    token = sign_in(client)
    r = client.post("/overrides/review", data={"event_id": "e1", "recipient": "coord",
                                               "finding": "justified", "csrf": token})  # fmt: skip
    assert " not recorded: " in r.text
    probes = [q for q in sink.queries() if q.data["page"] == "overrides.review"]
    assert [q.data["detail"] for q in probes] == [{"event_id": "e1", "recipient": "coord"}]


def test_an_unexpected_error_is_a_plain_page_with_the_security_headers(
    make_client: Callable[..., TestClient], indexed: list[AuditRecord],
    store: AuditStore, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    client = make_client()
    client = TestClient(client.app, base_url=str(client.base_url), raise_server_exceptions=False)
    sign_in(client)

    def broken() -> None:
        raise RuntimeError("index gone: 9997017463")

    monkeypatch.setattr(store, "heads", broken)
    with capture_logs() as logs:
        r = client.get("/")
    assert r.status_code == 500
    assert "could not show this page" in r.text
    assert "9997017463" not in r.text
    assert "Traceback" not in r.text
    assert r.headers["content-security-policy"].startswith("default-src 'none'")
    assert r.headers["cache-control"] == "no-store"
    assert [e["error"] for e in logs if e["event"] == "console_error"] == ["RuntimeError"]
    assert "9997017463" not in str(logs)


def test_a_probe_with_free_text_for_an_id_keeps_that_text_out_of_the_log(
    client: TestClient, sink: IndexingSink
) -> None:
    token = sign_in(client)
    client.post("/overrides/review", data={"event_id": "Amy Hollis DY4 7AA",
                                           "recipient": "school-1", "finding": "justified",
                                           "csrf": token})  # fmt: skip
    [probe] = [q for q in sink.queries() if q.data["page"] == "overrides.review"]
    # No bundle is loaded, and no decision of that event to school-1 is indexed: the
    # recipient cannot be told from something typed by hand either.
    assert probe.data["detail"] == {
        "event_id": "(not an identifier)", "recipient": "(not an identifier)",
    }  # fmt: skip
    assert all("Hollis" not in r.to_bytes().decode() for r in sink.records)


def test_the_dashboard_lists_encompass_notices_read_late_or_unread(
    make_client: Callable[..., TestClient], store: AuditStore, keys: FileKeyStore,
    linker: Linker, verifier: KeystoreAuditVerifier, clock: Clock,
) -> None:  # fmt: skip
    """Friday evening's notices are due Monday 08:30: at 10:30 one is unread, one was read
    late, one on time (not listed)."""
    chain = EncompassChain(keys, linker)
    for event, school in (("e-open", SCHOOL_A), ("e-ontime", SCHOOL_A), ("e-late", SCHOOL_B)):
        chain.decided(event, school, encompass_notice_data())
    chain.opened("e-ontime", SCHOOL_A, DEADLINE - timedelta(minutes=20))
    chain.opened("e-late", SCHOOL_B, DEADLINE + timedelta(minutes=45))
    assert index_records(store, verifier, chain.signed()).breaks == []
    clock.now = DEADLINE + timedelta(hours=2)
    client = make_client()
    sign_in(client)
    page = client.get("/").text
    assert re.search(r'id="encompass-late">2<', page)
    row = r"<tr><td>([^<]+)</td><td><code>([^<]+)</code></td>.*?<td>([a-z]+(?: [a-z]+)*)"
    rows = re.findall(row, page)
    assert rows == [(SCHOOL_A, "e-open", "open past deadline"),
                    (SCHOOL_B, "e-late", "acknowledged late")]  # fmt: skip
    assert "<td>2026-11-23 08:30 UTC</td>" in page  # the deadline: Monday's start (GMT)


def test_the_dashboard_says_nothing_of_encompass_when_every_notice_was_read_in_time(
    client: TestClient,
) -> None:
    sign_in(client)
    page = client.get("/").text
    assert re.search(r'id="encompass-late">0<', page)
    assert 'id="encompass"' not in page
