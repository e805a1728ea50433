"""``accord policy impact``: what a new bundle would change, before it is put in force."""

from __future__ import annotations

import enum
import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from broker.cli._loop import run
from broker.config import load_settings
from broker.errors import BundleInvalid, ConfigError, PolicyError, UsageError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from broker.config import Settings
    from broker.kafka import KafkaClients
    from broker.pipeline import Impact
    from broker.policy import Policy, Unversioned


class Format(enum.StrEnum):
    table = "table"
    json = "json"


New = Annotated[Path, typer.Option("--policies", help="The new bundle to assess.")]
Current = Annotated[
    Path | None,
    typer.Option(help="The bundle in force (default: ACCORD_POLICIES, else policies/ here)."),
]
Since = Annotated[
    str | None,
    typer.Option(help="Only events published since this long ago: 7d, 36h, 90m, or an ISO "
                 "date. By each Kafka record's timestamp (when it was published), not the "
                 "event's occurred_at (default: every event the ingress topics still hold)."),
]  # fmt: skip
FormatOpt = Annotated[Format, typer.Option("--format", help="table, or json for scripts.")]
Processes = Annotated[
    int, typer.Option(help="Processes to decide in (each reads the keystore).", min=1, max=64)
]
Strict = Annotated[
    bool,
    typer.Option("--strict", help="Refuse, before reading anything, a new bundle that changes an "
                 "agreement without increasing its version (otherwise a warning)."),
]  # fmt: skip

_AGO = re.compile(r"^(\d+)([dhm])$")


def parse_since(value: str | None, now: datetime) -> datetime | None:
    if value is None:
        return None
    if m := _AGO.match(value.strip()):
        unit = {"d": "days", "h": "hours", "m": "minutes"}[m.group(2)]
        return now - timedelta(**{unit: int(m.group(1))})
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError("--since: not 7d, 36h, 90m or an ISO date") from None
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    if at > now:
        # Nothing is retained from the future: the run would compare nothing and look clean.
        raise UsageError(f"--since: {value} is in the future")
    return at


def _load(folder: Path, role: str) -> Policy:
    """The bundle, or its problem named with which of the two bundles it is in: both are
    loaded, and a file path alone does not say. A bundle that does not load is an input
    the command cannot run on: exit 2, as ``accord policy test --policies`` refuses one;
    exit 1 stays a run that compared nothing (or a --strict refusal)."""
    from broker.policy import load_bundle

    try:
        return load_bundle(folder)
    except BundleInvalid as exc:
        raise UsageError(f"{role} ({folder}{os.sep}): {exc}") from None


def register_impact(policy_app: typer.Typer) -> None:
    @policy_app.command("impact")
    def impact(
        policies: New,
        current: Current = None,
        since: Since = None,
        fmt: FormatOpt = Format.table,
        processes: Processes = 1,
        *,
        strict: Strict = False,
    ) -> None:
        """Re-decide the retained ingress under the bundle in force and under a new one:
        what would stop or start being shared, and which fields recipients would gain or
        lose. Delivers nothing; the run is audited (policy_impact), with your login name.
        Runs with the worker's keystore and Kafka login. Exit codes: 0 compared; 1 nothing
        compared, or another failure (--strict refused, keystore, Kafka); 2 a usage or
        configuration error (a bundle that does not load, an ingress topic of the bundle
        in force not provisioned)."""
        _impact(policies, current, since, fmt, processes, strict=strict)


def _unversioned(before: Policy, after: Policy, *, strict: bool) -> list[Unversioned]:
    """The agreements the new bundle changes but leaves at their version: after rollout the
    audit log would cite one version for two texts. A warning line each on stderr, or with
    ``strict`` a refusal naming them all."""
    from broker.policy import changed_without_new_version

    found = changed_without_new_version(before.bundle, after.bundle)
    if found and strict:
        named = ", ".join(f"{u.agreement} v{u.version}" for u in found)
        raise PolicyError(f"--strict: the new bundle changes {named} without increasing "
                          "its version")  # fmt: skip
    for u in found:
        typer.echo(f"warning: {u.line()}", err=True)
    return found


def _other_baseline(
    settings: Settings, given: Path | None, before: Policy, new: Path, after: Policy
) -> None:
    """Warn when ``--current`` is not the bundle in the folder the worker loads from.

    Which bundle the worker last loaded is in its ``policy_loaded`` audit records, which
    this command cannot read (the worker's Kafka login may only write ``accord.audit``);
    its own folder is the next best witness, and an officer approving a change against
    another baseline approves the wrong difference. Only ``ACCORD_POLICIES`` says where the
    worker loads from; ``policies/`` here is a guess (a checkout's is often the draft)."""
    from broker.policy import load_bundle

    worker = settings.policies_at_hand()
    if given is None or worker is None:
        return
    # The draft's own folder (or a copy) is no other baseline only where it is a guess (a
    # checkout's policies/ being edited): the worker's ACCORD_POLICIES holding the new
    # bundle means it already runs it, and these are not the changes approving it makes.
    guess = settings.policies_dir is None
    if worker.resolve() == given.resolve() or (guess and worker.resolve() == new.resolve()):
        return
    try:
        there = load_bundle(worker)
    except BundleInvalid:
        return  # the worker would refuse it too: it says nothing of what is in force
    if there.version == before.version or (guess and there.version == after.version):
        return
    if settings.policies_dir is not None:
        said = (f"but the worker loads {worker} (ACCORD_POLICIES), bundle {there.version}: "
                "the changes are counted against --current")  # fmt: skip
    else:
        said = (f"but policies/ here is bundle {there.version} (ACCORD_POLICIES is not set): "
                "if the worker loads ./policies, the changes are counted against --current, "
                "not what it runs")  # fmt: skip
    typer.echo(f"warning: --current ({given}) is bundle {before.version}, {said}", err=True)


def _same_bundle(
    settings: Settings, given: Path | None, in_force: Path, new: Path, version: str
) -> None:
    """Both bundles the same (one version hash): every decision compares unchanged, which
    says nothing of a draft. Refused when the bundle in force was not named, since then the
    worker's folder (or a checkout's policies/) holds the draft and the officer meant another
    baseline; a warning when ``--current`` names it, as a benchmark of re-deciding does."""
    if given is not None:
        typer.echo(f"warning: --policies ({new}) is the same bundle as --current ({given}), "
                   f"{version}: every decision compares unchanged", err=True)  # fmt: skip
        return
    where = ("from ACCORD_POLICIES" if settings.policies_dir is not None
             else "policies/ here, as ACCORD_POLICIES is not set")  # fmt: skip
    raise UsageError(f"the bundle in force ({in_force}, {where}) and --policies ({new}) are the "
                     f"same bundle, {version}: nothing to compare; name the one in force with "
                     "--current DIR or ACCORD_POLICIES")  # fmt: skip


def _impact(
    new: Path, current: Path | None, since: str | None, fmt: Format, n: int, *, strict: bool
) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    # Who ran it, named as ``accord audit verify`` names its runs: the command has no sign-in.
    from broker.cli._audit_verify import _login_name as login_name
    from broker.cli._common import kafka_as, keystore
    from broker.kafka import read_retained
    from broker.pipeline import Tally, compare, record_impact, redecide_both
    from broker.principals import Principal
    from broker.topics import CONSENT

    settings = load_settings()
    in_force = current or settings.policies_at_hand()
    if in_force is None:  # --policies here is the NEW bundle: the one in force is missing
        raise UsageError("no bundle in force: pass --current DIR or set ACCORD_POLICIES")
    start = parse_since(since, datetime.now(UTC))
    before, after = _load(in_force, "the bundle in force"), _load(new, "the new bundle")
    if before.version == after.version:
        _same_bundle(settings, current, in_force, new, before.version)
    unversioned = _unversioned(before, after, strict=strict)
    _other_baseline(settings, current, before, new, after)
    typer.echo(f"note: the bundle in force is taken to be {in_force} "
               f"({_whence(settings, current)}), {before.version}", err=True)  # fmt: skip
    keys = keystore(settings, Principal.WORKER)
    keys.linkage_key()  # no linkage key, no subject keys: say so before reading anything
    kafka = kafka_as(settings, Principal.WORKER)
    topics, unread = _ingress_topics(kafka, before, after, in_force)
    err = Console(stderr=True)
    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        console=err, transient=True, disable=not err.is_terminal,
    )  # fmt: skip
    with bar:
        reading = bar.add_task("reading", total=None)
        since_ms = int(start.timestamp() * 1000) if start else None

        def advance(k: int) -> None:
            bar.advance(reading, k)

        # The topics read, with their partition counts: each record's key and partition are
        # checked as the worker checks them (unkeyed, under another id or on a partition its
        # key did not hash to is refused here too), against the counts the topic can have
        # had when it was written, as the records read show them (_impact_placement).
        partitions: dict[str, int] = {}
        events = run(read_retained(kafka, topics, since_ms=since_ms, progress=advance,
                                   partitions=partitions))  # fmt: skip
        consents = run(read_retained(kafka, [CONSENT], progress=advance,
                                     partitions=partitions))  # fmt: skip
        records = [*consents, *events]
        deciding = bar.add_task("deciding", total=len(records))
        tally = Tally()
        decided = redecide_both(
            in_force, new, records,
            keystore=keys.path, passphrase=settings.keystore.passphrase,
            envelope=settings.envelope, processes=n,
            progress=lambda k: bar.advance(deciding, k), tally=tally, partitions=partitions,
        )  # fmt: skip
    result = compare(*decided, versions=(before.version, after.version), consents=tally.consents)
    result.since, result.read, result.compared = start, len(events), tally.compared
    result.not_compared = tally.reasons()
    result.unversioned = tuple(unversioned)
    result.new_senders_not_read = tuple(unread)
    # Audited even when nothing was compared: every consent record was opened all the same.
    chain = run(record_impact(kafka, keys, result, by=login_name()))
    _warn_reopening(result)
    if fmt is Format.json:
        typer.echo(json.dumps({**result.as_json(), "audit_chain": chain}, indent=2))
    else:
        _print(result, chain, unread=unread)
    if result.nothing_compared:
        # Never a clean exit: a script gating a change on "no decision would change" must
        # not pass one that was checked against nothing.
        raise typer.Exit(1)


def _whence(settings: Settings, current: Path | None) -> str:
    """Where the bundle in force was taken from: a checkout's ``policies/`` is often the
    draft, and a run that took it silently read as measured against what the worker runs."""
    if current is not None:
        return "--current"
    if settings.policies_dir is not None:
        return "ACCORD_POLICIES"
    return ("policies/ here, a guess: neither --current nor ACCORD_POLICIES is set; name the "
            "one the worker loads with --current DIR")  # fmt: skip


def _ingress_topics(
    kafka: KafkaClients, before: Policy, after: Policy, in_force: Path
) -> tuple[list[str], list[str]]:
    """The ingress topics to read, of every sender either bundle knows, and the senders only
    the new bundle knows whose topic the worker cannot read yet (not provisioned before
    approval): those are said, not failed on. Under the bundle in force, a new sender's
    events are refused as the worker refuses them (``unknown-sender``): read, they show
    what the new bundle starts; unread, they were counted as nothing retained.

    A topic of a sender in the bundle in force that the worker cannot read is refused: the
    run would compare too little and look clean."""
    from broker.kafka import missing_topics
    from broker.provision import publishers
    from broker.topics import ingress

    known = publishers(before)
    senders = sorted(set(known) | set(publishers(after)))
    missing = set(run(missing_topics(kafka, [ingress(p) for p in senders],
                                     client_id="accord-policy-impact")))  # fmt: skip
    for p in known:
        if ingress(p) in missing:
            raise ConfigError(f"the topic {ingress(p)} of {p}, a sender in the bundle in force, "
                              "does not exist or is not readable by the worker: run 'accord "
                              f"kafka provision --policies {in_force}' as the admin")  # fmt: skip
    unread = [p for p in senders if ingress(p) in missing]
    return [ingress(p) for p in senders if p not in unread], unread


def _warn_reopening(result: Impact) -> None:
    """One line on stderr, whatever the format, when withdrawals or refusals on file would
    count for nothing under the new bundle: the shares they stopped start again, and the
    decisions' lines show only that they start (``consent-withdrawn``), not why. One more
    for those never filed that the new bundle would accept: they still stop nothing."""
    warnings = (
        (result.reopening, "on file would count for nothing under the new bundle ({}): "
         "sharing they stopped would resume"),
        # Not on file, so no bundle makes them count: one widened to accept them must not
        # read as the family's withdrawal now heeded.
        (result.unfiled_stops, "not on file ({}): sharing continues until recorded again "
         "under a new id"),
    )  # fmt: skip
    for rows, said in warnings:
        if rows:
            n = sum(r.records for r in rows)
            which = ", ".join(f"{r.recorded_by} {r.state} {r.records} ({r.reason})" for r in rows)
            typer.echo(f"warning: {n} consent withdrawal(s) or refusal(s) {said.format(which)}",
                       err=True)  # fmt: skip


def _print_consents(result: Impact) -> None:
    """The consent records taken differently, before the decisions they change."""
    if not result.consents:
        return
    typer.echo("consent records treated differently:")
    for r in result.consents:
        typer.echo(f"{'! ' if r.reopens or r.unfiled_stop else '  '}{r.said()}")


def _print_unread(unread: Sequence[str]) -> None:
    for party in unread:
        typer.echo(f"{party}: new sender, no topic the worker can read yet (run 'accord kafka "
                   "provision' after approval); nothing of it compared")  # fmt: skip


def _print(result: Impact, chain: str, *, unread: Sequence[str] = ()) -> None:
    from rich.console import Console
    from rich.table import Table

    out = Console(width=120)
    if result.nothing_compared:
        typer.echo(f"{result.nothing_said()} (bundle {result.current_version[:19]} -> "
                   f"{result.new_version[:19]})")  # fmt: skip
        if result.read:
            typer.echo(result.not_compared_said())
        _print_unread(unread)
        _print_consents(result)
        typer.echo(f"audited as policy_impact on chain {chain}")
        return
    typer.echo(
        f"{result.events} event(s), {result.decisions} decision(s) compared; "
        f"{result.unchanged} unchanged (bundle {result.current_version[:19]} -> "
        f"{result.new_version[:19]})"
    )
    typer.echo(result.not_compared_said())
    _print_unread(unread)
    _print_consents(result)
    if result.rows:
        table = Table("change", "agreement", "recipient", "other side's reason", "events", box=None)
        for r in result.rows:
            table.add_row(r.change, r.agreement or "-", r.recipient, r.reason_said(),
                          str(r.events))  # fmt: skip
        out.print(table)
    for label, fields in (("gains", result.gained), ("loses", result.lost),
                          ("would see otherwise", result.views)):  # fmt: skip
        for recipient, counts in fields.items():
            listed = ", ".join(f"{f} ({n})" for f, n in counts.items())
            typer.echo(f"{recipient} {label}: {listed}")
    if not (result.rows or result.gained or result.lost or result.views):
        typer.echo("no decision would change")
    typer.echo(f"audited as policy_impact on chain {chain}")
