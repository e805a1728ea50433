"""The console's pages. Each one that shows audit data first writes a ``console_query`` record.

Order matters: the record of the look-up is committed to ``accord.audit`` *before* the page is
rendered, and a page whose record cannot be written shows no data (503). So the log of who
looked at whom has no gaps, even when Kafka is down. The override pages are in
:mod:`._pages_overrides`, registered from here with the helpers below.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from broker.audit import AuditRecord
from broker.console import _chains
from broker.console._app import Console
from broker.console._charts import counts_chart, days_ending, decisions_chart
from broker.console._deps import ConsoleDeps
from broker.console._instance import fenced_page
from broker.console._pages_overrides import register_override_pages
from broker.console._refusals import expired_agreements, refusals
from broker.errors import AccordError, ChainBroken, Fenced, TransportError, UsageError
from broker.governance import (
    VIA_WORDS,
    LookupPurpose,
    SubjectSearch,
    VerifySummary,
    Window,
    disclosure_log,
    earlier_lookups,
    expiring_agreements,
    governance_report,
    lookup_via,
    policy_impact_runs,
    record_query,
    subject_search,
    verification_state,
)
from broker.webauth import Flash, Session, form_field, read_form

log = structlog.get_logger("accord.console")

CHART_DAYS = 14


# The form's fields for a child without an NHS number, named as subject_search's options.
_DEMOGRAPHICS = {
    "given_name": "Given name",
    "family_name": "Family name",
    "dob": "Date of birth",
    "postcode": "Postcode",
}
_LABELS = {f"--{field.replace('_', '-')}": label for field, label in _DEMOGRAPHICS.items()}


def _subject_search(form: Any, deps: ConsoleDeps) -> SubjectSearch:
    """The keys to search for the child the form names; :class:`UsageError` if it does not
    name one by NHS number or by name and date of birth (the CLI's options, in its words)."""
    # An empty field is one not filled in: the form posts every field.
    nhs = (form_field(form, "nhs_number") or "").strip() or None
    typed = {f: (form_field(form, f) or "").strip() or None for f in _DEMOGRAPHICS}
    named = any(value is not None for value in typed.values())
    if nhs is not None and named:
        also = " and the ".join(_DEMOGRAPHICS[f].lower() for f, v in typed.items() if v)
        raise UsageError(f"You gave the NHS number and the {also}. {_BOTH}")
    if nhs is None and not named:
        raise UsageError(_NEITHER)
    return subject_search(
        deps.linkage_key, now=deps.clock(), nhs_number=nhs, given_name=typed["given_name"],
        family_name=typed["family_name"], dob=typed["dob"], postcode=typed["postcode"],
    )  # fmt: skip


_BOTH = "Give the NHS number or the name and date of birth, not both."
_NEITHER = "Give the NHS number, or the given name, family name and date of birth."


def _form_error(message: str) -> Flash:
    """A refusal of the search in the form's words, never what was typed, and the field it
    is about (the summary links to it)."""
    if message == _NEITHER or message.endswith(_BOTH):
        return Flash.error(message, field="nhs_number")
    if message.startswith("--nhs-number: "):
        return Flash.error(
            "NHS number: " + message.removeprefix("--nhs-number: "), field="nhs_number"
        )
    option, sep, rest = message.partition(": ")
    if sep and option in _LABELS:
        return Flash.error(f"{_LABELS[option]}: {rest}", field=_field(option))
    needs = "a look-up by name also needs "
    if message.startswith(needs):
        options = message.removeprefix(needs).split(" and ")
        wanted = " and the ".join(_LABELS.get(o, o).lower() for o in options)
        return Flash.error(f"A look-up by name also needs the {wanted}.", field=_field(options[0]))
    return Flash.error(message)


def _field(option: str) -> str | None:
    name = option.removeprefix("--").replace("-", "_")
    return name if name in _DEMOGRAPHICS else None


class _Unavailable(Exception):
    """The console could not write its audit record, so it must not show the page's data."""


def register_pages(app: FastAPI, console: Console) -> None:  # noqa: PLR0915  # route table
    deps = console.deps
    # Where a verification or a look-up was made, in the chain page's words (_chains).
    console.templates.globals["via_words"] = VIA_WORDS
    console.templates.globals["lookup_via"] = lookup_via
    # The bundle a condition-false line's clause conditions are read from (log_table.html).
    console.templates.globals["policy_in_force"] = lambda: deps.policy

    def signed_in(request: Request) -> Session | None:
        session = console.session(request)
        return session if session is not None and session.user else None

    def unposted(request: Request) -> Response:
        """A form ``posted`` refused: with no session, to sign in (the edge adds the page to
        return to, and says what was lost); signed in, a token from an earlier session: the
        page every app says it with (nothing done, nothing typed repeated)."""
        return console.stale_form(request)

    async def audited(session: Session, page: str, **kw: Any) -> AuditRecord:
        try:
            record = await record_query(deps.audit, officer=session.user or "", page=page, **kw)
        except TransportError as exc:
            deps.metrics.audit_written(page, ok=False)
            if not isinstance(exc, Fenced):  # said once, as console_fenced (run_console)
                # The reason is a TransportError's own message (what failed, never data); no
                # traceback: the failure is expected whenever Kafka is away.
                log.error("console_audit_unavailable", page=page, error=str(exc))  # noqa: TRY400
            raise _Unavailable from exc
        deps.metrics.audit_written(page, ok=True)
        return record

    async def refused_unless_audited(session: Session, page: str, **kw: Any) -> Response | None:
        """None once the look-up is in the audit log; else the page that shows no data."""
        try:
            await audited(session, page, **kw)
        except _Unavailable as exc:
            return unavailable(session, exc.__cause__)
        return None

    def unavailable(session: Session, why: BaseException | None) -> HTMLResponse:
        title, message = (
            "Audit log unavailable",
            "The console could not record this look-up in the audit log, so it shows "
            "nothing. Try again shortly; if it persists, the audit topic is unreachable.",
        )
        if isinstance(why, Fenced):
            deps.on_fenced()
            title, message = fenced_page(deps.chain)
        return console.render("error.html", session, status=503, title=title, message=message)

    async def posted(request: Request) -> tuple[Session | None, Any]:
        """The signed-in session of a POST whose CSRF token matches, and its form."""
        session = signed_in(request)
        if session is None:  # checked before the body is even read
            return None, None
        form = await read_form(request)
        if not session.csrf_ok(form_field(form, "csrf")):
            return None, form
        return session, form

    @app.get("/", response_class=HTMLResponse)
    async def dashboard(request: Request) -> Response:
        session = signed_in(request)
        if session is None:
            return console.redirect("/login")
        today = deps.clock().date()
        days = days_ending(today, CHART_DAYS)
        since = datetime.combine(days[0], time(), tzinfo=deps.clock().tzinfo)
        window = Window(since=since, until=since + timedelta(days=CHART_DAYS))
        report = governance_report(deps.store, window, policy=deps.policy, today=today,
                                   schools=deps.schools, now=deps.clock())  # fmt: skip
        # The late or unsent Encompass notices and undelivered withdrawal notices are about
        # children: the record of this view names them, so it is among each child's earlier
        # look-ups (as the overrides page's is).
        notices = [(n.event_id, n.school) for n in report.encompass_late]
        notices += [(n.event_id, n.school) for n in report.encompass_unsent]
        keys = tuple(sorted({
            k for event_id, school in notices
            if (d := deps.store.find_decision(event_id, school)) is not None
            for k in d.subject_keys
        } | {k for w in report.undelivered_notices for k in w.subject_keys}))  # fmt: skip
        if refusal := await refused_unless_audited(session, "dashboard", subject_keys=keys):
            return refusal
        heads = deps.store.heads()
        last = deps.store.last_verification()
        # Why the window's decisions were not shared, from the report's own counts.
        refused = refusals(
            (d.agreement_id, d.recipient, d.outcome, d.reason, d.count) for d in report.decisions
        )
        per_day = deps.store.decisions_per_day(window)
        return console.render(
            "dashboard.html",
            session,
            decisions=decisions_chart(per_day, days),
            refused=refused,
            # Each decision once: ``refused`` counts one under each of its agreements.
            not_shared=sum(n for _, outcome, n in per_day if outcome == "not_shared"),
            expired=expired_agreements(deps.policy, today, refused),
            policy_loaded=deps.policy is not None,
            quarantine=counts_chart(list(report.quarantine)),
            report=report,
            heads=heads,
            # A failed verification counts until a later one passes.
            broken=len(_chains.broken_chains(deps.store, last)),
            last_failed=last if last is not None and not last.ok else None,
            days=days,
        )

    @app.get("/subjects", response_class=HTMLResponse)
    async def subject_form(request: Request) -> Response:
        session = signed_in(request)
        if session is None:
            return console.redirect("/login")
        return console.render("subject.html", session, purposes=list(LookupPurpose), log=None)

    @app.post("/subjects", response_class=HTMLResponse)
    async def subject_search(request: Request) -> Response:
        session, form = await posted(request)
        if session is None:
            return unposted(request)
        purposes = list(LookupPurpose)
        errors: list[Flash] = []
        purpose = search = None
        try:
            purpose = LookupPurpose(form_field(form, "purpose") or "")
        except ValueError:
            errors.append(Flash.error("Choose why you are looking this child up.", field="purpose"))
        try:
            search = _subject_search(form, deps)
        except UsageError as exc:
            errors.append(_form_error(str(exc)))
        if purpose is None or search is None:
            # The reason chosen is kept (it names no one); what was typed is never echoed.
            return console.render(
                "subject.html", session, status=400, purposes=purposes, log=None, errors=errors,
                purpose=purpose.value if purpose else None,
            )  # fmt: skip
        detail = {"purpose": purpose.value, **search.detail()}
        try:
            mine = await audited(session, "subject", subject_keys=search.keys, detail=detail)
        except _Unavailable as exc:
            return unavailable(session, exc.__cause__)
        entries = disclosure_log(deps.store, *search.keys, matched_on=search.matched_on)
        return console.render(
            "subject.html",
            session,
            purposes=purposes,
            log=entries,
            subject_keys=search.keys,
            searched=search.summary(),
            lookups=earlier_lookups(deps.store, search.keys, mine),
            purpose=purpose.value,
            # What a SAR attachment carries: when, by whom, and the log's state then.
            produced=mine.at,
            log_state=verification_state(deps.store, logged=[e.logged_at for e in entries]),
        )

    register_override_pages(
        app, console, signed_in=signed_in, posted=posted, unposted=unposted,
        refused_unless_audited=refused_unless_audited, unavailable=unavailable,
    )  # fmt: skip

    @app.get("/agreements", response_class=HTMLResponse)
    async def agreements(request: Request) -> Response:
        session = signed_in(request)
        if session is None:
            return console.redirect("/login")
        if refusal := await refused_unless_audited(session, "agreements"):
            return refusal
        rows = deps.store.decision_counts(Window())
        uses: dict[str, dict[str, int]] = {}
        for agreement, _, outcome, _, n in rows:
            if agreement:
                per = uses.setdefault(agreement, {})
                per[outcome] = per.get(outcome, 0) + n
        today = deps.clock().date()
        policy = deps.policy
        expiring = {e.agreement_id for e in expiring_agreements(policy, today)} if policy else set()
        return console.render(
            "agreements.html",
            session,
            agreements=policy.bundle.agreements if policy else None,
            policy_version=policy.version if policy else None,
            uses=uses,
            refused=refusals(rows),
            expiring=expiring,
            today=today,
            # Who compared which proposed bundle with the one in force: counts, no child.
            impacts=policy_impact_runs(deps.store, Window()),
        )

    @app.get("/chains", response_class=HTMLResponse)
    async def chains(request: Request) -> Response:
        session = signed_in(request)
        if session is None:
            return console.redirect("/login")
        if refusal := await refused_unless_audited(session, "chains"):
            return refusal
        # What this session's verification found, once, after its POST's redirect (audited
        # then, before it redirected); otherwise the index's record of the last one.
        shown = console.verified.take(session.id) or _chains.Outcome()
        return chain_page(session, summary=shown.summary, broken=shown.broken, notice=shown.notice)

    @app.post("/chains/verify")
    async def verify(request: Request) -> Response:
        session, _ = await posted(request)
        if session is None:
            return unposted(request)
        summary = None
        broken: str | None = None
        # Neither busy nor unable to run says anything about the log: not shown as a failure,
        # which an officer would read as a broken chain.
        notice: str | None = None
        outcome = {"result": "busy"}
        if console.verifying.locked():
            notice = "A verification is already running; try again when it has finished."
        else:
            async with console.verifying:
                try:
                    summary = await _chains.verify_all(deps, session.user or "")
                    outcome = {"result": "intact", "records": str(summary.records)}
                except ChainBroken as exc:
                    broken = str(exc)
                    outcome = {"result": "broken", "chain": exc.chain or "",
                               "seq": str(exc.seq), "problem": exc.what}  # fmt: skip
                except AccordError as exc:
                    notice = f"Verification could not run, so nothing was checked: {exc}"
                    outcome = {"result": "not_run"}
        # The run and what it found are on record before the page shows them: chain names,
        # seqs and rule text only.
        # A passing run's record also vouches for the heads it verified (_verify_vouch).
        heads = summary.heads if summary is not None else None
        if refusal := await refused_unless_audited(
            session, "chains.verify", detail=outcome, verified_heads=heads
        ):
            return refusal
        # Post/Redirect/Get: the address bar ends on /chains, which a reload or a bookmark
        # can open; the page shows what this run found.
        console.verified.put(session.id, _chains.Outcome(summary, broken, notice))
        return console.redirect("/chains", session)

    def chain_page(
        session: Session,
        *,
        summary: VerifySummary | None = None,
        broken: str | None = None,
        notice: str | None = None,
    ) -> Response:
        checkpoints = {c: deps.store.latest_checkpoint(c) for c in deps.store.chains()}
        heads = deps.store.heads()
        last = deps.store.last_verification()
        return console.render(
            "chains.html",
            session,
            heads=heads,
            checkpoints=checkpoints,
            records=deps.store.count(),
            result=summary.line() if summary else None,
            verified=summary.records if summary else None,
            broken=broken,
            notice=notice,
            last=last,
            broken_chains=_chains.broken_chains(deps.store, last),
        )
