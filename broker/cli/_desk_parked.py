"""``accord desk parked --as PARTY``: the deliveries a desk (or another subscriber of the
party's) keeps until the broker key that signed them is imported, and dropping them.

A parked record is a delivery signed by a broker key the keystore has never heard of
(broker.sdk._parked): a genuine one the keystore is behind with the keys for, or a forgery.
Listed by where it was, when it was parked and the signer key id its bundle claims (anybody's
claim until the signature is checked), never by anything of its value, which is sealed.

The fix for a genuine one is the import (``accord keys import``), after which it opens by
itself; dropping one loses it for good if it was genuine, and nobody can send it again, so a
drop is refused without ``--force``, as ``keys revoke`` refuses what cannot be undone. A forged
one never opens, and the bounds drop it after 30 days: dropping is for an operator who has
checked the signer key id out of band and knows it is nobody's.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from broker.config import load_settings
from broker.errors import UsageError

if TYPE_CHECKING:
    from broker.sdk import SqliteReplayMemory

As = Annotated[str, typer.Option("--as", help="The party whose parked records these are.")]
Group = Annotated[
    str | None,
    typer.Option(help="The subscriber's consumer group, PARTY.NAME (default PARTY.desk)."),
]
Drop = Annotated[
    list[str] | None,
    typer.Option(
        "--drop",
        metavar="TOPIC:PARTITION:OFFSET",
        help="Drop this parked record (with --force; may be given more than once).",
    ),
]
DropAll = Annotated[
    bool, typer.Option("--drop-all", help="Drop every parked record (with --force).")
]
Force = Annotated[
    bool,
    typer.Option("--force", help="Drop for good: a genuine record dropped cannot be sent again."),
]
_HEADER = ("TOPIC", "PARTITION", "OFFSET", "PARKED AT (UTC)", "AGE", "SIGNER KEY (CLAIMED)")


def register(desk: typer.Typer) -> None:
    desk.command("parked")(parked)


def parked(
    party: As,
    group: Group = None,
    drop: Drop = None,
    drop_all: DropAll = False,
    force: Force = False,
) -> None:
    """List the deliveries kept until the broker key that signed them is imported (where they
    were, when parked, the signer key id they claim; never their content), or drop them. Run
    it where the subscriber runs (its ACCORD_HOME). The fix is 'accord keys import'."""
    from broker.sdk import SqliteReplayMemory, default_replay_file

    group = group or f"{party}.desk"
    if not group.startswith(f"{party}.") or len(group) == len(party) + 1:
        raise UsageError(f"consumer group {group!r}: {party}'s groups are {party}.NAME")
    if drop and drop_all:
        raise UsageError("give --drop or --drop-all, not both")
    wanted = [_position(p) for p in drop or []]
    path = default_replay_file(group, load_settings().home)
    # Opening a memory that is not there would make an empty one and say nothing is parked.
    if not path.is_file():
        raise UsageError(
            f"no replay memory at {path}: run this where {group}'s subscriber runs (its "
            "ACCORD_HOME, on its volume)"
        )
    # Never pruned here: the subscriber's retention may be longer than the default, and its
    # sightings are its own. A listing changes nothing at all.
    dropping = bool(wanted or drop_all)
    memory = SqliteReplayMemory(path, group=group, prune=False, read_only=not dropping)
    try:
        if dropping:
            _drop(memory, path, wanted, force=force)
        else:
            _list(memory, path)
    finally:
        memory.close()


def _position(given: str) -> tuple[str, int, int]:
    topic, _, rest = given.rpartition(":")
    topic, _, partition = topic.rpartition(":")
    if not (topic and _number(partition) and _number(rest)):
        raise UsageError(f"--drop {given!r}: TOPIC:PARTITION:OFFSET, as 'accord desk parked' lists")
    return (topic, int(partition), int(rest))


def _number(text: str) -> bool:
    # ASCII digits only: str.isdigit also takes superscripts, which int() refuses.
    return text.isascii() and text.isdecimal()


def _list(memory: SqliteReplayMemory, path: Path) -> None:
    entries = memory.parked_entries()
    if not entries:
        typer.echo(f"no records parked in {path}")
        return
    now = time.time()
    rows = [_HEADER] + [
        (
            e.topic,
            str(e.partition),
            str(e.offset),
            datetime.fromtimestamp(e.parked_at, UTC).strftime("%Y-%m-%d %H:%M:%S"),
            _age(now - e.parked_at),
            e.signer_key_id or "-",
        )
        for e in entries
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    typer.echo(
        f"{len(entries)} parked in {path}: a genuine one opens once the latest key directory "
        "is imported (accord keys import); a forged one never does, and is dropped after 30 days"
    )


def _drop(
    memory: SqliteReplayMemory, path: Path, wanted: list[tuple[str, int, int]], *, force: bool
) -> None:
    if not force:
        held = {e.position for e in memory.parked_entries()}
        _no_missing(path, [p for p in wanted if p not in held])
        chosen = len(set(wanted)) if wanted else len(held)
        if not chosen:
            typer.echo(f"no records parked in {path}")
            return
        raise UsageError(
            f"refusing to drop {chosen} parked record(s) without --force: a genuine one "
            "is lost for good (nobody can send it again); import the latest key directory "
            "first (accord keys import), and drop only what still does not open"
        )
    # Checked and dropped in one transaction, and said only once it is over (the log too):
    # only what was dropped, and the subscriber sharing the file never waits on our output.
    dropped, missing = memory.drop_parked(wanted or None)
    _no_missing(path, missing)
    if not dropped:
        typer.echo(f"no records parked in {path}")
    for position in dropped:
        typer.echo(f"dropped {_say(position)}")


def _no_missing(path: Path, missing: list[tuple[str, int, int]]) -> None:
    if missing:
        raise UsageError(
            f"no record parked at {_say(missing[0])} in {path} (see 'accord desk parked'); "
            "nothing was dropped"
        )


def _say(position: tuple[str, int, int]) -> str:
    return ":".join(map(str, position))


def _age(seconds: float) -> str:
    minutes = max(int(seconds // 60), 0)
    days, hours, minutes = minutes // 1440, minutes // 60 % 24, minutes % 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m"
