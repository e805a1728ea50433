"""``accord policy check|explain|test|impact``: work with a policy bundle before it goes live."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from broker._words import plural
from broker.cli._impact import register_impact
from broker.errors import BundleInvalid, EventInvalid, UsageError

if TYPE_CHECKING:
    from broker.events import ConsentRecord, ContactEvent
    from broker.policy import Decision, Policy, Unevaluated

# Module level: typer resolves these string annotations in the module's globals.
BundleDir = Annotated[Path, typer.Argument(help="The policy bundle folder.")]
EventFile = Annotated[Path, typer.Argument(help="A contact event as JSON.")]
ScenarioPaths = Annotated[list[Path], typer.Argument(help="Scenario files or folders.")]
PoliciesOpt = Annotated[
    Path | None,
    typer.Option(
        "--policies",
        help="Policy bundle folder (default: ACCORD_POLICIES, else policies/ here, else the "
        "example bundle).",
    ),
]
ConsentsOpt = Annotated[
    Path | None,
    typer.Option("--consents", help="Consent records: a JSON list, JSON lines, or YAML list."),
]
AtOpt = Annotated[
    str | None, typer.Option("--at", help="Decision time, ISO 8601 with timezone (default: now).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _default_policies(given: Path | None) -> Path:
    """The bundle to explain or test under: trying the example is what these commands are
    for, so with none named and none here, the example bundle (unlike every other command)."""
    if given is not None:
        return given
    from broker.config import load_settings

    return load_settings().policies_or_example()


def _parse_at(value: str | None) -> datetime:
    if value is None:
        # The CLI is the entry point: the one place the wall clock is read.
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError("--at: not an ISO 8601 date-time") from None
    if at.tzinfo is None:
        raise UsageError("--at: give a timezone, e.g. 2026-11-22T08:00:00Z")
    return at


def _read_consents(path: Path) -> list[ConsentRecord]:
    import yaml

    from broker.events import parse_consents

    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix in {".jsonl", ".ndjson"}:  # as accord publish reads exports
            items: Any = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            items = yaml.safe_load(text)  # JSON is read fine by the YAML loader
    # ValueError: not UTF-8, or an integer too long for Python to parse.
    except (ValueError, yaml.YAMLError):
        raise UsageError(f"--consents: {path} is not JSON, JSON lines or YAML") from None
    if items is None:
        return []
    if not isinstance(items, list):
        raise UsageError(f"--consents: {path} must hold a list of consent records")
    try:
        return parse_consents(items, now=None)
    except EventInvalid as exc:
        # Named as the file and record, not as "invalid event": the event file is fine.
        found = "; ".join(f"record {_record_path(p)}: {m}" for p, m in exc.problems[:3])
        more = f" (+{len(exc.problems) - 3} more)" if len(exc.problems) > 3 else ""
        raise UsageError(f"--consents: {path}: {found}{more}") from None


def _record_path(path: str) -> str:
    """``[0].subject.nhs_number`` as ``1, subject.nhs_number`` (records counted from 1, as in
    explain's list of refused consents and scenarios' ``refused_consents``)."""
    index, sep, rest = path.removeprefix("[").partition("]")
    if not (sep and index.isdigit()):
        return path
    rest = rest.removeprefix(".")
    return f"{int(index) + 1}, {rest}" if rest else str(int(index) + 1)


def _basis(d: Decision) -> str:
    """One line an article, in the words the desk and the disclosure log use."""
    from broker.policy import basis_words

    if d.lawful_basis is None:
        return ""
    return basis_words(d.lawful_basis.model_dump(exclude_none=True), sep="\n") or ""


def _fields(d: Decision) -> str:
    return "\n".join(
        f"{p} → {d.transforms[p]}" if p in d.transforms else p for p in d.fields_shared
    )


#: Said of a consent reason a justified concern would have overridden: the event is valid
#: and decided, so without this the concern's being set aside would go unseen.
_UNJUSTIFIED = "the safeguarding concern did not override, as its justification is empty"


def _no_override(event: ContactEvent, d: Decision) -> str | None:
    """Why a flagged concern did not override a consent refusal under a clause that allows
    it (``required_unless_safeguarding``): its justification is empty, blank or invisible."""
    consent_reason = d.reason in ("consent-missing", "consent-refused", "consent-withdrawn")
    overridable = d.consent_rule == "required_unless_safeguarding"
    unjustified = event.safeguarding.unjustified
    return _UNJUSTIFIED if consent_reason and overridable and unjustified else None


def _reason(d: Decision, unevaluated: tuple[Unevaluated, ...], note: str | None = None) -> str:
    """The reason, and when a condition that could not be evaluated decided it, that: it
    would otherwise read exactly as one that was false."""
    if note is not None:
        return f"{d.reason} ({note})"
    clauses = [u for u in unevaluated if u.condition == "clause"]
    blocking = [u for u in unevaluated if u.condition == "restriction"]
    if d.reason == "condition-false" and clauses:
        more = f" (and {len(clauses) - 1} more)" if len(clauses) > 1 else ""
        return f"{d.reason} (could not be evaluated: {clauses[0].error}{more})"
    if d.reason == "suppressed" and blocking:
        return f"{d.reason} (restriction could not be evaluated, so it holds: {blocking[0].error})"
    return d.reason or ""


#: Roles whose plural is not the role and an s ("2 children", never "2 child").
_IRREGULAR = {"child": "children"}


def _rows(
    d: Decision, unevaluated: tuple[Unevaluated, ...] = (), note: str | None = None
) -> list[tuple[str, str]]:
    outcome = d.outcome + (" (flagged for IG review)" if d.review_required else "")
    rows = [("Outcome", outcome)]
    if d.reason:
        rows.append(("Reason", _reason(d, unevaluated, note)))
    rows.append(
        (
            "Clauses",
            "\n".join(
                f"{g.agreement_id} v{g.agreement_version} / {g.clause_id}" for g in d.grounds
            ),
        )
    )
    if d.purpose:
        rows.append(("Purpose", d.purpose))
    rows.append(("Lawful basis", _basis(d)))
    if d.override_grounds:
        rows.append(("Override on", d.override_grounds.replace("_", " ")))
    rows.append(("Consent", f"{d.consent} ({d.consent_rule})" if d.consent_rule else d.consent))
    rows.append(("Fields shared", _fields(d) or "none"))
    withheld = "\n".join(d.fields_withheld)
    if d.restrictions:
        withheld += ("\n" if withheld else "") + f"(restriction: {', '.join(d.restrictions)})"
    rows.append(("Fields withheld", withheld or "none"))
    if d.subjects:
        roles = ", ".join(
            plural(n, role.replace("_", " "), _IRREGULAR.get(role))
            for role, n in d.subject_roles.items()
        )
        rows.append(("Subjects", f"{len(d.subjects)} ({roles})"))
    if unevaluated:
        rows.append(
            (
                "Not evaluated",
                "\n".join(f"{u.condition} {u.name}: {u.error}" for u in unevaluated),
            )
        )
    return rows


def _refused(policy: Policy, records: list[ConsentRecord]) -> list[dict[str, Any]]:
    """The consent records the worker would refuse on arrival under the bundle (they count
    for nothing), by position from 1: who recorded each (a party), why, and the purpose or
    recipient it does not know (``term``, with ``detail`` in words), never whom it is about."""
    out = []
    for n, record in enumerate(records, start=1):
        if (refused := policy.refusal_on_arrival(record)) is not None:
            why, term = refused
            item: dict[str, Any] = {"consent": n, "recorded_by": record.recorded_by, "reason": why}
            if term is not None:
                item |= {"term": term, "detail": policy.refusal_words(why, term)}
            out.append(item)
    return out


def _ignored(policy: Policy, records: list[ConsentRecord]) -> list[dict[str, Any]]:
    """The withdrawals the worker would file with words ignored, by position from 1: who
    recorded each, the purposes and recipients that count, and each word ignored (``term``,
    ``reason``, ``detail`` in words)."""
    out = []
    for n, record in enumerate(records, start=1):
        if ignored := policy.ignored_on_arrival(record):
            filed = policy.filed_on_arrival(record)
            out.append({
                "consent": n, "recorded_by": record.recorded_by,
                "purposes": list(filed.purposes), "recipients": list(filed.recipients),
                "ignored": [{"term": t, "reason": r, "detail": policy.refusal_words(r, t)}
                            for r, t in ignored],
            })  # fmt: skip
    return out


def _explain_tables(
    decisions: list[Decision],
    views: dict[str, Any],
    version: str,
    at: datetime,
    unevaluated: dict[str, tuple[Unevaluated, ...]],
    *,
    notes: dict[str, str],
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, soft_wrap=False)
    # Shortened as `policy impact` shortens it (the full hash is 71 characters, which wraps
    # this line even at 120 columns); --json gives it whole, as policy_version.
    console.print(f"Decisions at {at.isoformat()} under policy {version[:19]}…")
    for d in decisions:
        table = Table(
            title=f"{d.recipient} ({d.recipient_kind})", show_header=False, title_justify="left"
        )
        table.add_column("", style="bold", no_wrap=True)
        table.add_column("", overflow="fold")
        for key, value in _rows(d, unevaluated.get(d.recipient, ()), notes.get(d.recipient)):
            table.add_row(key, value)
        console.print(table)
        if d.recipient in views:
            console.print(f"View for {d.recipient}:")
            console.print_json(json.dumps(views[d.recipient], ensure_ascii=False))
        console.print()


def _explain(
    event_file: Path, policies: Path | None, consents: Path | None, at: str | None, as_json: bool
) -> None:
    from broker.events import parse_event
    from broker.policy import (
        Policy,
        inactive_reason,
        no_candidates,
        no_hub,
        redact,
        unevaluated_conditions,
    )

    when = _parse_at(at)
    raw = event_file.read_bytes()
    event = parse_event(raw, now=when)
    records = _read_consents(consents) if consents else []
    policy = Policy.load(_default_policies(policies))
    refused = _refused(policy, records)
    ignored = _ignored(policy, records)
    # Decided as the worker would: a record it refuses on arrival is never filed, and a
    # withdrawal is filed without the words it ignores.
    gone = {item["consent"] for item in refused}
    filed = [policy.filed_on_arrival(r) for n, r in enumerate(records, start=1) if n not in gone]
    decisions = policy.decide(event, filed, at=when)
    unevaluated = {
        d.recipient: unevaluated_conditions(policy, event, d, at=when) for d in decisions
    }
    notes = {d.recipient: n for d in decisions if (n := _no_override(event, d)) is not None}
    # Which of draft, suspended, lapsed or not begun: each is fixed in a different place.
    inactive = {
        d.recipient: why for d in decisions if (why := inactive_reason(policy.bundle, d, at=when))
    }
    hubless = no_hub(policy, event)
    # Pseudonyms in an explanation use a throwaway key: they show the shape, not real values.
    key = secrets.token_bytes(32)
    views = {d.recipient: redact(event, d, pseudonym_key=key) for d in decisions if d.shares}
    # Why no one is a candidate: an unrouted event and one whose clauses' selectors found no
    # hub or school are different faults, fixed in different places.
    nobody = None if decisions else no_candidates(policy, event)
    if as_json:
        out = {
            "policy_version": policy.version,
            "at": when.isoformat(),
            "no_candidates": nobody,
            "no_hub": [clause.as_json() for clause in hubless],
            "refused_consents": refused,
            "partly_ignored_consents": ignored,
            "decisions": [
                _json_decision(d, unevaluated[d.recipient], notes.get(d.recipient))
                | ({"inactive": inactive[d.recipient]} if d.recipient in inactive else {})
                for d in decisions
            ],
            "views": views,
        }
        typer.echo(json.dumps(out, indent=2, ensure_ascii=False))
        return
    for item in refused:
        typer.echo(
            f"Consent {item['consent']} (recorded by {item['recorded_by']}) is refused and "
            f"counts for nothing: {item.get('detail', item['reason'])}"
        )
    for item in ignored:
        typer.echo(
            f"Consent {item['consent']} (recorded by {item['recorded_by']}) is a withdrawal "
            f"that counts for purposes {', '.join(item['purposes'])} and recipients "
            f"{', '.join(item['recipients'])} only; ignored: "
            + "; ".join(i["detail"] for i in item["ignored"])
        )
    if nobody is not None:
        typer.echo(f"No candidate recipients: {nobody}")
        return
    # Others are told, so no_candidates' sentence is not said: a hub left out needs its own.
    for clause in hubless:
        typer.echo(clause.said())
    _explain_tables(decisions, views, policy.version, when, unevaluated, notes=notes | inactive)
    if any("_pseudonym" in json.dumps(v) for v in views.values()):
        typer.echo("(pseudonyms above use a throwaway key: the real key gives different values)")


def _json_decision(
    d: Decision, unevaluated: tuple[Unevaluated, ...], note: str | None = None
) -> dict[str, Any]:
    """The decision as audited, plus what explain adds: every agreement its clauses come
    from (``agreement_id`` is the first ground's, as in the audit record), the conditions
    it rests on that could not be evaluated, and why a flagged concern did not override."""
    out = d.model_dump(mode="json")
    out["agreement_ids"] = list(dict.fromkeys(g.agreement_id for g in d.grounds))
    out["unevaluated"] = [u.as_json() for u in unevaluated]
    if note is not None:
        out["no_override"] = note
    return out


def register(app: typer.Typer) -> None:
    policy = typer.Typer(
        help="Check, explain, test policy bundles, and assess a new one's impact.",
        no_args_is_help=True,
    )
    app.add_typer(policy, name="policy")
    register_impact(policy)

    @policy.command("check")
    def check(directory: BundleDir) -> None:
        """Check a bundle: a one-line summary, or every problem (one per line) and exit 1."""
        from broker.policy import Policy, dated_notes

        try:
            loaded = Policy.load(directory)
        except BundleInvalid as exc:
            for problem in exc.problems:
                typer.echo(problem)
            n = len(exc.problems)
            raise BundleInvalid([f"{directory}: {n} problem{'s' if n != 1 else ''}"]) from None
        for warning in loaded.warnings(placed=True):
            typer.echo(f"warning: {warning}", err=True)
        # Dated by today, as the worker decides: a lapsed approval passed silently.
        for level, said in dated_notes(loaded.bundle, datetime.now(UTC).date(), loaded.source):
            typer.echo(f"{level}: {said}", err=True)
        typer.echo(f"ok: {directory}: {loaded.summary()}")

    @policy.command("explain")
    def explain(
        event_file: EventFile,
        policies: PoliciesOpt = None,
        consents: ConsentsOpt = None,
        at: AtOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Show who would receive an event, what, and why; and each recipient's view."""
        _explain(event_file, policies, consents, at, as_json)

    @policy.command("test")
    def test(paths: ScenarioPaths, policies: PoliciesOpt = None) -> None:
        """Run scenario files or folders; a closing 'N passed, N failed'; exit 1 on any failure."""
        from broker.cli._policy_test import run_tests

        code = run_tests(paths, policies, _default_policies(policies))
        if code:
            raise typer.Exit(code)
