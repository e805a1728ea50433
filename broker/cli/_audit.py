"""``accord audit index|verify|subject|report|review-override|quarantine|received``: the IG
officer's tools."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

import structlog
import typer

from broker._words import plural
from broker.cli._audit_options import (
    Db,
    Dob,
    FamilyName,
    Fmt,
    Follow,
    Format,
    GivenName,
    IndexDb,
    MetricsHost,
    MetricsPort,
    NhsNumber,
    Policies,
    Postcode,
    RepFmt,
    ReportFormat,
    ReportReason,
    RepReason,
    Since,
    SubjectReason,
    SubjReason,
    Until,
)
from broker.cli._audit_quarantine import quarantine
from broker.cli._audit_received import received
from broker.cli._audit_review import review
from broker.cli._audit_store import appender_of as _appender
from broker.cli._audit_store import index_once as _index_once
from broker.cli._audit_store import is_copy, policy_at_hand
from broker.cli._audit_store import open_index as _store
from broker.cli._audit_store import verifier_of as _verifier
from broker.cli._audit_verify import verify
from broker.cli._common import kafka_as, keystore
from broker.cli._loop import run
from broker.cli._officer import (
    Code,
    Host,
    Officer,
    PasswordStdin,
    sign_in,
    who_and_why,
)
from broker.config import Settings, load_settings
from broker.errors import AuditError, ChainBroken, TransportError, UsageError
from broker.principals import Principal

if TYPE_CHECKING:
    from broker.audit import AuditRecord
    from broker.governance import (
        AuditStore,
        GovernanceReport,
        Indexer,
        IndexSummary,
    )
    from broker.keys import FileKeyStore

log = structlog.get_logger("accord.audit")


def parse_when(value: str | None, option: str, *, end: bool = False) -> datetime | None:
    """A date (whole day; ``end`` means up to and including it) or an ISO date-time."""
    if value is None:
        return None
    # A value without a time part is a whole day in any ISO form (2026-11-30, 20261130,
    # 2026-W48-1): datetime would read 20261130 as its first instant and drop the day.
    try:
        day = date.fromisoformat(value)
    except ValueError:
        pass
    else:
        return datetime.combine(day + timedelta(days=1 if end else 0), time(), UTC)
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{option}: not an ISO 8601 date or date-time") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def index(
    db: IndexDb = None,
    follow: Follow = False,
    metrics_host: MetricsHost = None,
    metrics_port: MetricsPort = None,
) -> None:
    """Consume accord.audit into the index, verifying every chain as it goes."""
    from prometheus_client import CollectorRegistry

    from broker.cli._logging import configure_logging
    from broker.governance import Indexer

    ops = {"metrics_host": metrics_host, "metrics_port": metrics_port}
    ops = {k: v for k, v in ops.items() if v is not None}
    settings = load_settings(indexer=ops or None)
    # JSON lines at info, as the worker's: --follow is a service, read by log collectors, and
    # structlog's default (debug, console rendering, tracebacks with their locals) is not.
    configure_logging("info", library_logs=follow)
    store = _store(settings, db, create=True)
    try:
        indexer = Indexer(
            store,
            _verifier(settings),
            kafka_as(settings, Principal.INDEXER),
            registry=CollectorRegistry(),
            stale_after=settings.indexer.stale_after_seconds,
            review_deadline=timedelta(days=settings.indexer.override_review_days),
            schools=settings.schools,
        )
        summary = run(_run_indexer(indexer, settings, follow=follow))
        typer.echo(_indexed(summary, store.count(), len(store.chains())))
        if summary.refused:
            typer.echo(summary.refusals())
    finally:
        store.close()
    for brk in summary.breaks:
        print(f"accord: error: {brk}", file=sys.stderr)  # noqa: T201  # one line per broken chain
    if summary.breaks:
        raise typer.Exit(1)


def _indexed(summary: IndexSummary, held: int, chains: int) -> str:
    """What a run added, then what the index holds: the indexer resumes after what it
    committed, so "0 already indexed" beside an index of 580 read as if none were."""
    again = f" ({summary.duplicates} read again, already indexed)" if summary.duplicates else ""
    return (
        f"indexed {plural(summary.indexed, 'new record')}{again}; the index holds "
        f"{plural(held, 'record')} in {plural(chains, 'chain')}"
    )


def subject(
    nhs_number: NhsNumber = None,
    given_name: GivenName = None,
    family_name: FamilyName = None,
    dob: Dob = None,
    postcode: Postcode = None,
    *,
    reason: SubjReason = None,
    officer: Officer = None,
    password_stdin: PasswordStdin = False,
    code: Code = None,
    host: Host = None,
    db: Db = None,
    fmt: Fmt = Format.TABLE,
) -> None:
    """A child's disclosure log (subject access): every decision, delivery and opening, and
    every consent record and withdrawal notice.

    Name the child by --nhs-number, or by --given-name, --family-name and --dob (and
    --postcode). The look-up is written to the audit log (who, why, the subject keys) before
    anything is shown, exactly as the console writes it, and appears among the child's
    earlier look-ups, which the table lists under the log (who, when, from where, why; as on
    the console's page, this look-up is not among them). CSV, JSON and the family's HTML
    page hold the log alone.
    Left out, --as and --reason are asked for at a terminal.
    """
    from broker.cli._audit_render import disclosure, output_width, state_warning
    from broker.governance import (
        disclosure_log,
        earlier_lookups,
        subject_search,
        verification_state,
    )

    settings = load_settings()
    keys = keystore(settings, Principal.CONSOLE)
    search = subject_search(
        keys.linkage_key(), now=datetime.now(UTC), nhs_number=nhs_number,
        given_name=given_name, family_name=family_name, dob=dob, postcode=postcode,
    )  # fmt: skip
    officer, why = who_and_why(officer, reason, SubjectReason, password_stdin=password_stdin)
    copy = is_copy(settings, db)  # read as it is: never caught up, migrated or tightened
    store = _store(settings, db, read_only=copy)
    try:
        name = sign_in(settings, officer, keys=keys, password_stdin=password_stdin, code=code)
        mine = _record_lookup(
            settings, keys, store, host, officer=name, page="cli.subject",
            subject_keys=search.keys, detail={"purpose": why.value, **search.detail()},
            catch_up=not copy,
        )  # fmt: skip
        entries = disclosure_log(store, *search.keys, matched_on=search.matched_on)
        # As the console finds them. A copy holds none of this run's (written to the live log).
        looked_up = earlier_lookups(store, search.keys, mine)
        if copy:
            state, failed = _copy_verified_now(settings, store)
        else:
            state = verification_state(store, logged=[e.logged_at for e in entries])
            last = store.last_verification()
            failed = last is not None and not last.ok
        broken = store.broken_chains()
    finally:
        store.close()
    searched = search.summary()
    # As the console's page says it: how the child was searched and the keys, never the
    # NHS number or the name typed.
    how = "by NHS number" if search.by == "nhs_number" else "by name and date of birth"
    produced = [
        f"Produced {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by {name}, for "
        f"{why.value.replace('_', ' ')}",
        f"Searched {how}; subject keys {', '.join(search.keys)}",
        f"Audit log: {state}",
    ]
    # The table names each condition its condition-false lines did not meet, as the console.
    table = fmt is Format.TABLE
    shown = disclosure(entries, fmt.value, searched=searched, produced=produced,
                       width=output_width(), conditions=table,
                       policy=policy_at_hand(settings) if table else None,
                       lookups=looked_up)  # fmt: skip
    typer.echo(shown)
    if searched is not None and fmt in (Format.CSV, Format.JSON):
        typer.echo(searched, err=True)  # not in the data: its shape is the same either way
    if fmt is Format.HTML:  # the page's header says it ("Audit log: ...")
        return
    warn_broken(broken)
    if warning := state_warning(state, copy=copy, failed=failed and not broken):
        typer.echo(warning, err=True)
    if broken or failed:
        # Still printed (stdout is the document, the break evidence), but a script sending
        # the answer on must not take it for a sound one.
        raise typer.Exit(1)


def _copy_verified_now(settings: Settings, store: AuditStore) -> tuple[str, bool]:
    """A copy's verification state for a SAR's header, verified on the spot (a copy keeps no
    ``verify_runs`` row: it is read-only, so "run 'accord audit verify'" could never be met),
    and whether it was found broken."""
    from broker.governance import verify_store

    try:
        summary = verify_store(store, _verifier(settings))
    except ChainBroken as exc:
        found, failed = f"BROKEN: {exc}", True
    else:
        counted = f"{plural(summary.records, 'record')} in {plural(summary.chains, 'chain')}"
        found, failed = f"intact, {counted}", False
    return (f"this copy, verified now: {found} (a copy keeps no verification of its own; "
            "'accord audit verify --db COPY' records one in the live log)", failed)  # fmt: skip


def report(
    *,
    reason: RepReason = None,
    officer: Officer = None,
    password_stdin: PasswordStdin = False,
    code: Code = None,
    host: Host = None,
    since: Since = None,
    until: Until = None,
    policies: Policies = None,
    db: Db = None,
    fmt: RepFmt = ReportFormat.TABLE,
) -> None:
    """Shares and non-shares, overrides awaiting review, quarantine, expiries, unopened,
    Operation Encompass notices read late or not yet read past their deadline.

    Like the console's dashboard, the look-up is written to the audit log, naming the
    children whose overrides and late notices it shows, before anything is printed. Left
    out, --as and --reason are asked for at a terminal.
    """
    from broker.cli._audit_report import report_json, report_text
    from broker.governance import Window, governance_report

    window = Window(parse_when(since, "--since"), parse_when(until, "--until", end=True))
    if window.since and window.until and window.since >= window.until:
        raise UsageError("--since must be before --until")
    settings = load_settings()
    # As the other commands find the bundle: --policies, else ACCORD_POLICIES, else ./policies
    # (never the example: its agreements' expiry dates are not this deployment's).
    policies = policies if policies is not None else settings.policies_at_hand()
    policy = None
    if policies is not None:
        from broker.policy import load_bundle

        policy = load_bundle(policies)
    keys = keystore(settings, Principal.CONSOLE)
    officer, why = who_and_why(officer, reason, ReportReason, password_stdin=password_stdin)
    copy = is_copy(settings, db)  # read as it is: never caught up, migrated or tightened
    store = _store(settings, db, read_only=copy)
    try:
        name = sign_in(settings, officer, keys=keys, password_stdin=password_stdin, code=code)
        if not copy:
            _index_once(settings, store)  # what is new on the topic is in the report
        now = datetime.now(UTC)
        rep = governance_report(
            store, window, policy=policy, today=now.date(), schools=settings.schools, now=now
        )
        detail = {"purpose": why.value}
        detail |= {k: v for k, v in (("since", since), ("until", until)) if v is not None}
        _record_lookup(
            settings, keys, store, host, officer=name, page="cli.report",
            subject_keys=_report_subjects(store, rep), detail=detail, catch_up=not copy,
        )  # fmt: skip
        broken = store.broken_chains()
    finally:
        store.close()
    if fmt is ReportFormat.JSON:
        typer.echo(report_json(rep, broken, copy=copy))
    else:
        typer.echo(report_text(rep, copy=copy))
    warn_broken(broken)


def warn_broken(broken: list[str]) -> None:
    """One line on stderr, outside the data (whose shape stays the same), exit code unchanged:
    the output was produced, but from an index missing what those chains hold past the break."""
    if broken:
        typer.echo(
            f"accord: warning: the indexer found audit chains broken ({', '.join(broken)}): "
            "their records after the break are not indexed, so this may be incomplete; treat "
            "it as a security incident and run 'accord audit verify'",
            err=True,
        )


def _report_subjects(store: AuditStore, rep: GovernanceReport) -> tuple[str, ...]:
    """The children the report shows data about (its pending and reviewed overrides, the
    decisions behind its late and unsent Encompass notices, its consent withdrawal notices):
    its record names them, as the console's dashboard and overrides page do, so it is among
    each child's earlier look-ups."""
    keys = {k for p in rep.pending_overrides for k in p.subject_keys}
    keys.update(k for r in rep.reviewed for k in r.subject_keys)
    keys.update(k for n in rep.withdrawals for k in n.subject_keys)
    shown = [(n.event_id, n.school) for n in rep.encompass_late]
    shown += [(n.event_id, n.school) for n in rep.encompass_unsent]
    for event_id, school in shown:
        if (d := store.find_decision(event_id, school)) is not None:
            keys.update(d.subject_keys)
    return tuple(sorted(keys))


def _record_lookup(
    settings: Settings,
    keys: FileKeyStore,
    store: AuditStore,
    host: str | None,
    *,
    officer: str,
    page: str,
    subject_keys: tuple[str, ...] = (),
    detail: dict[str, str],
    catch_up: bool = True,
) -> AuditRecord:
    """Write the ``console_query`` record and, unless ``catch_up`` is False (a copy, opened
    read-only), index it; nothing is shown if this fails. Returns the record written.

    The record goes to the live log, its chain going on from the head the configured index
    has: a copy's head (older, or with that chain deleted) would fork the command line's
    chain. A copy is therefore not shown where the configured index cannot be opened."""
    from broker.cli._audit_verify import _configured_index
    from broker.governance import record_query

    live = None
    if not catch_up:
        live = _configured_index(settings)
        if live is None:
            raise AuditError("--db names a copy, and the configured index (ACCORD_AUDIT_DB, or "
                             "<ACCORD_HOME>/audit.db when unset) cannot be opened here, so the "
                             "look-up could not be recorded in the audit log and nothing is "
                             "shown; set ACCORD_AUDIT_DB to the live index's URL")  # fmt: skip
    try:
        appender = _appender(settings, keys, live if live is not None else store, host)
    except BaseException:
        if live is not None:
            live.close()
        raise

    async def write() -> AuditRecord:
        try:
            return await record_query(
                appender, officer=officer, page=page, subject_keys=subject_keys, detail=detail
            )
        finally:
            await appender.close()

    try:
        written = run(write())
    except (TransportError, AuditError) as exc:
        raise AuditError(f"the look-up could not be recorded in the audit log, so nothing is "
                         f"shown: {exc}") from None  # fmt: skip
    finally:
        if live is not None:
            live.close()
    if catch_up:
        _index_once(settings, store)
    return written


def register(app: typer.Typer) -> None:
    audit = typer.Typer(
        help="Index, verify and report on the tamper-evident audit log.", no_args_is_help=True
    )
    app.add_typer(audit, name="audit")
    audit.command("index")(index)
    audit.command("verify")(verify)
    audit.command("subject")(subject)
    audit.command("report")(report)
    audit.command("review-override")(review)
    audit.command("quarantine")(quarantine)
    audit.command("received")(received)


async def _run_indexer(indexer: Indexer, settings: Settings, *, follow: bool) -> IndexSummary:
    import signal

    from broker.ops import serving_ops

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if not follow:  # it ends by itself: nothing for a probe or a scrape to watch
        return await indexer.run(follow=follow, stop=stop)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    assert indexer.metrics is not None  # noqa: S101  # index() gives it a registry
    async with serving_ops(
        settings.indexer,
        indexer.metrics.registry,
        live=indexer.live,
        ready=indexer.ready,
        kafka=indexer.kafka.settings,
    ):
        # A service's start, logged as the worker's and the desk's are (--once, a command,
        # keeps stderr for errors). Facts only: where it indexes into, and from which topic.
        log.info(
            "audit_index_started", store=indexer.store.backend, follow=follow, topic=indexer.topic
        )
        return await indexer.run(follow=follow, stop=stop)
