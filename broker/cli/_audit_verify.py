"""``accord audit verify``: prove the log intact, from the index or from the topic itself."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from broker._words import plural
from broker.cli._audit_options import Db, FromTopic, Heads, SaveHeads
from broker.cli._audit_store import (
    appender_of,
    console_keys_here,
    is_copy,
    open_index,
    verifier_of,
)
from broker.cli._common import kafka_as
from broker.cli._loop import run
from broker.config import load_settings
from broker.errors import AuditError, ChainBroken, TransportError, UsageError
from broker.principals import Principal

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from broker.audit import AuditRecord
    from broker.config import Settings
    from broker.governance import AuditStore, IndexView, TopicMessage, VerifiedHead
    from broker.kafka import KafkaClients


def verify(
    db: Db = None, from_topic: FromTopic = False, heads: Heads = None, save_heads: SaveHeads = None
) -> None:
    """Prove the log intact; name the first bad record and exit 1 if it is not."""
    from broker.governance import (
        index_view,
        newest_checkpoints,
        signed_chains,
        signed_checkpoints,
        verify_and_keep,
        verify_records,
        verify_store,
    )

    settings = load_settings()
    verifier = verifier_of(settings)
    # A copy (evidence) is read, never written: no verify_runs row, migration or chmod.
    copy = is_copy(settings, db)
    if heads is not None and not from_topic:
        raise UsageError("--heads checks a read of the topic: give --from-topic too")
    if from_topic:
        reference = _read_heads(heads) if heads is not None else {}
        view: IndexView | None = None

        def read_index(partitions: int) -> None:
            # Before the topic: a checkpoint indexed after the read would look like
            # truncation, and a record indexed after it like one the index lost.
            nonlocal view
            index = open_index(settings, db, read_only=copy)
            try:
                view = index_view(index, range(partitions))
            finally:
                index.close()
            for chain, cp in view.checkpoints.items():
                if chain not in reference or cp.seq > reference[chain].seq:
                    reference[chain] = cp

        messages, partitions = run(
            _read_audit(kafka_as(settings, Principal.INDEXER), read_index if db else None)
        )
        topic = signed_chains(messages, verifier, partitions=partitions)
        summary = verify_records(
            topic, verifier, reference=reference if reference else None, index=view
        )
        newest = newest_checkpoints(topic)
    else:
        store = open_index(settings, db, read_only=copy)
        by = _login_name()
        named = _index_named(settings, db, store)
        try:
            # Kept in the configured index, pass or fail: the console shows the last result
            # until a later verification passes. A copy's is in the signed log alone.
            try:
                if copy:
                    summary = verify_store(store, verifier)
                else:
                    summary = verify_and_keep(
                        store, verifier, by=by, via="cli", clock=lambda: datetime.now(UTC),
                        not_kept=_not_kept,
                    )  # fmt: skip
            except ChainBroken as exc:
                broken = {"chain": exc.chain or "", "seq": str(exc.seq), "problem": exc.what}
                _record_run(settings, store, by, {"result": "broken", **broken, **named})
                raise
            outcome = {"result": "intact", "records": str(summary.records), **named}
            _record_run(settings, store, by, outcome, summary.heads)
            newest = signed_checkpoints(store)
        finally:
            store.close()
    typer.echo(summary.line())
    if save_heads is not None:
        lines = [newest[c].to_bytes().decode() for c in sorted(newest)]
        save_heads.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        typer.echo(f"{plural(len(lines), 'signed head')} saved to {save_heads}")


def _login_name() -> str:
    """Who ran ``verify`` at this terminal, as far as it can tell: the login name, which
    anyone can set (LOGNAME), so labelled as such; it has no sign-in (it shows no child)."""
    import getpass

    try:
        name = getpass.getuser()
    except (OSError, KeyError):
        name = "unknown"
    return f"{name} (terminal, not signed in)"


def _not_kept(exc: AuditError) -> None:
    # One line on stderr, not a log line on stdout: stdout is the answer, which stands.
    typer.echo(f"accord: warning: result not kept in the index: {exc}", err=True)


def _index_named(settings: Settings, db: str | None, store: AuditStore) -> dict[str, str]:
    """Which index a run verified, for its record: the file of an SQLite index, a
    PostgreSQL URL without its credentials or parameters; and whether it is the index this
    deployment is configured with, or another (a copy, say), so that a reader of the log
    does not take a copy's result for the live index's."""
    from broker.governance import describe_url

    configured = settings.audit.db.get_secret_value() if settings.audit.db else None
    path = getattr(store, "path", None)
    if path is not None:
        name = str(Path(path).resolve())
    else:
        name = describe_url(db if db is not None else configured or "")
    # Compared as the database reads each URL, not as printed: a copy named by a query's
    # ?port=…&dbname=… is not the configured index, nor postgres:// another than postgresql://.
    return {"index": name, "index_role": "copy" if is_copy(settings, db) else "configured"}


def _record_run(settings: Settings, store: AuditStore, by: str, outcome: dict[str, str],
                heads: Mapping[str, VerifiedHead] | None = None) -> None:  # fmt: skip
    """The run and its result in the audit log, as the console's ``chains.verify`` writes
    them, when this machine holds the console's signing key; the index's ``verify_runs`` row
    is anyone's to write, the signed record is not. The answer stands if it cannot be
    written: one line on stderr says so.

    Recorded in the configured log whichever index was verified (verifying a copy is an IG
    action too), naming the index and whether it is a copy. A passing run's record of the
    configured index also vouches for the ``heads`` it verified; a copy's vouches for
    nothing: a copy may hold a chain the live index never will (an evidence copy from before
    a restore, say), and the live index would then fail forever. A copy's run is not recorded
    where the configured index cannot be opened (the chain would go on from the copy's
    head, and could fork): one line on stderr says so."""
    from broker.governance import record_query

    keys = console_keys_here(settings)
    if keys is None:
        return
    live = None
    if outcome.get("index_role") == "copy":
        heads = None
        live = _configured_index(settings)
        if live is None:
            typer.echo("accord: warning: this verification is not recorded in the audit log: "
                       "--db names an index other than the configured index (ACCORD_AUDIT_DB, "
                       "or <ACCORD_HOME>/audit.db when unset), which cannot be opened here; if "
                       "--db is the live index, set ACCORD_AUDIT_DB to its URL so this run is "
                       "recorded and vouches", err=True)  # fmt: skip
            return
    # The command line's chain goes on from its head as the configured index has it: a
    # copy's (older, or with that chain deleted) would have it fork its own chain.
    appender = appender_of(settings, keys, live if live is not None else store, None)

    async def write() -> None:
        try:
            await record_query(
                appender, officer=by, page="cli.verify", detail=outcome, verified_heads=heads
            )
        finally:
            await appender.close()

    try:
        run(write())
    except (TransportError, AuditError) as exc:
        typer.echo(f"accord: warning: this verification is not recorded in the audit log: {exc}",
                   err=True)  # fmt: skip
    finally:
        if live is not None:
            live.close()


def _configured_index(settings: Settings) -> AuditStore | None:
    """The configured index, if this machine has it: where the command line's chain head is
    found. None when it has not, e.g. a workstation reaching the live index only through
    --db (a copy's run is then not recorded)."""
    try:
        return open_index(settings, None)
    except (AuditError, UsageError):
        return None


async def _read_audit(
    kafka: KafkaClients, before: Callable[[int], None] | None = None
) -> tuple[list[TopicMessage], int]:
    """The audit topic's messages, and how many partitions it has (where chains must be);
    ``before`` is called with that count before the messages are read."""
    from broker.governance import read_topic
    from broker.kafka import partition_count
    from broker.topics import AUDIT

    partitions = await partition_count(kafka, AUDIT)
    if before is not None:
        before(partitions)
    return await read_topic(kafka), partitions


def _read_heads(path: Path) -> dict[str, AuditRecord]:
    """Signed checkpoints saved by an earlier ``verify --save-heads``: one record a line."""
    from broker.audit import AuditKind, read_record

    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise UsageError(f"{path}: cannot be read as saved heads (UTF-8 text)") from None
    out: dict[str, AuditRecord] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        try:
            rec = read_record(line)
        except ValueError:
            raise UsageError(f"{path}:{n}: not an audit record") from None
        if rec.kind is not AuditKind.CHECKPOINT:
            raise UsageError(f"{path}:{n}: not a checkpoint")
        # The newest head of a chain, wherever its line is: files saved on different days
        # may be joined in any order, and an older head would let a topic cut back to it pass.
        if rec.chain not in out or rec.seq > out[rec.chain].seq:
            out[rec.chain] = rec
    return out
