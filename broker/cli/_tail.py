"""``accord tail``: open and print the records delivered to a party, as they arrive."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from broker.cli._common import kafka_as, keystore
from broker.cli._loop import run
from broker.config import Settings, load_settings
from broker.errors import UsageError

if TYPE_CHECKING:
    from broker.sdk import SharedRecord

As = Annotated[str, typer.Option("--as", help="The party you receive as.")]
JsonOut = Annotated[bool, typer.Option("--json", help="One JSON object per line.")]
Group = Annotated[str | None, typer.Option(help="Consumer group, PARTY.NAME (default PARTY.tail).")]
MaxRecords = Annotated[int | None, typer.Option("--max", help="Stop after N records.")]
Idle = Annotated[float | None, typer.Option(help="Stop after this many seconds with nothing new.")]
By = Annotated[
    str | None,
    typer.Option(
        help="Who is reading (a staff or system id): each record printed is acknowledged as "
        "opened by it, in the child's disclosure log. Default: your login name.",
        show_default=False,
    ),
]

SkipKeyProblems = Annotated[
    bool,
    typer.Option(
        "--skip-key-problems",
        help="Report a record your keystore cannot open because of its keys (a key of yours "
        "lost or revoked, or the broker's signing key expired before you read it), "
        "and go past it, losing it. Default: stop on it.",
    ),
]


def register(app: typer.Typer) -> None:
    @app.command("tail")
    def tail(
        party: As,
        *,
        group: Group = None,
        json_out: JsonOut = False,
        max_records: MaxRecords = None,
        idle: Idle = None,
        by: By = None,
        skip_key_problems: SkipKeyProblems = False,
    ) -> None:
        """Open and print the records delivered to a party, as they arrive; each record
        printed is acknowledged (audited as opened by --by, default your login name)."""
        from broker.cli._logging import configure_logging

        settings = load_settings()
        # A record that cannot be opened is logged: to stderr, never among the records.
        # aiokafka stays quiet: Kafka being down is one line (ours), as for one-shot commands.
        configure_logging("warning", library_logs=False)
        run(
            _tail(
                settings,
                party,
                group=group or f"{party}.tail",
                as_json=json_out,
                max_records=max_records,
                idle=idle,
                by=by if by is not None else _login(),
                skip_key_problems=skip_key_problems,
            )
        )


def _login() -> str:
    """Who is at this terminal, as the system knows them: the audit log must name a person,
    never the tool (an IG officer cannot ask ``accord-tail`` why it opened a child's record).
    ``UsageError`` when there is no login name to take: then --by must say."""
    import getpass

    try:
        name = getpass.getuser()
    except (OSError, KeyError):  # no LOGNAME, USER or passwd entry (a bare container)
        raise UsageError(
            "--by: no login name to record as the reader; give your staff id"
        ) from None
    try:
        _check_by(name)
    except UsageError:
        # Not repeated: a login name is a person's, and stderr may be kept in a log.
        raise UsageError(
            "--by: your login name is not a staff or system id (letters, digits, . _ / -); "
            "give your staff id"
        ) from None
    return name


async def _tail(
    settings: Settings,
    party: str,
    *,
    group: str,
    as_json: bool,
    max_records: int | None,
    idle: float | None,
    by: str,
    skip_key_problems: bool = False,
) -> None:
    from broker.sdk import Subscriber, default_replay_file

    _check_by(by)  # before anything is read: a record is never shown unacknowledged
    keys = keystore(settings, party)
    memory = default_replay_file(group, settings.home)
    seen = 0
    async with Subscriber(
        party,
        keys,
        kafka_as(settings, party),
        group,
        envelope=settings.envelope,
        replay_memory=memory,
        skip_key_problems=skip_key_problems,
    ) as sub:
        # One record at a time: the subscriber commits a record's offset only when asked for
        # the next, so a record is acknowledged, then shown, then committed, and a failure
        # between loses nothing (it is read again).
        records = aiter(sub)
        while max_records is None or seen < max_records:
            try:
                record = await asyncio.wait_for(anext(records), idle)
            except TimeoutError:
                break
            if not record.is_notice:  # who opened what: the console's "opened" column
                await record.opened(by=by, purpose=_purpose(record))
            _print_record(record, as_json)
            seen += 1
        await sub.commit()  # the last record handled (the loop commits each on the next)
        if sub.parked:
            # Kept, not lost: said once at the end, where a person reading the terminal sees it.
            sys.stderr.write(
                f"{sub.parked} record(s) for {party} are parked: signed by a broker key this "
                "keystore does not know yet; they open here once the latest key directory is "
                "imported ('accord keys import')\n"
            )


def _check_by(by: str) -> None:
    """``UsageError`` unless the broker would take ``by`` as who opened a record; the message
    never repeats it (it may be a name, or a child's NHS number, and stderr may be kept)."""
    from pydantic import TypeAdapter, ValidationError

    from broker.events import AccessAck, holds_nhs_or_telephone_number

    if holds_nhs_or_telephone_number(by):
        # The disclosure log would show it as "opened by" in other children's SARs, forever.
        raise UsageError(
            "--by: a staff or system id, never an NHS or telephone number; give your staff id"
        )
    checks = AccessAck.model_fields["by"].metadata
    try:
        TypeAdapter(Annotated[str, *checks]).validate_python(by)
    except ValidationError:
        raise UsageError(
            "--by: a staff or system id (letters, digits, . _ / -), not free text"
        ) from None


def _purpose(record: SharedRecord) -> str:
    from broker.events import Delivery

    return record.message.purpose if isinstance(record.message, Delivery) else "unknown"


def _print_record(record: SharedRecord, as_json: bool) -> None:
    data = record.message.model_dump(mode="json")
    if as_json:
        sys.stdout.write(json.dumps(data, sort_keys=True) + "\n")
        sys.stdout.flush()
        return
    from rich import print_json

    print_json(data=data)
