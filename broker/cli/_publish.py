"""``accord publish``: an agency's bulk export, validated, sealed and published."""

from __future__ import annotations

import codecs
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, BinaryIO, NamedTuple

import typer

from broker.cli._common import kafka_as, keystore
from broker.cli._loop import run
from broker.config import Settings, load_settings
from broker.errors import AccordError, KeyStoreError, TransportError, UsageError

if TYPE_CHECKING:
    from broker.sdk import GoodRow, RowProblem

As = Annotated[str, typer.Option("--as", help="The party you publish as.")]
ExportFile = Annotated[Path, typer.Argument(help="A .jsonl or .csv export of contact events.")]
FromLine = Annotated[
    int,
    typer.Option(
        "--from-line",
        min=1,
        help=(
            "Skip the events that start before this line (to finish a run that stopped). "
            "Lines count as in 'stopped at line N': a CSV row over several lines is at its first."
        ),
    ),
]

#: Events per publish_many call: each call is acknowledged by Kafka before the next goes, so
#: a failure leaves everything before the failing chunk known to be published.
_CHUNK = 200


def register(app: typer.Typer) -> None:
    @app.command("publish")
    def publish(file: ExportFile, party: As, from_line: FromLine = 1) -> None:
        """Validate, seal and publish a bulk export; bad rows are listed and the rest sent."""
        if not file.is_file():
            raise UsageError(f"{file}: no such file")
        _refusing_a_json_document(file)
        settings = load_settings()
        failed = run(_publish(settings, party, file, from_line))
        if failed:
            raise typer.Exit(1)


#: Longest line the check below parses, and the most it reads of the file's end: a document
#: on one line can be hundreds of MB, and the check is only a guess at what the file is
#: (each line is read for real afterwards).
_LINE_AT_MOST = 1 << 20


class _Line(NamedTuple):
    start: int  #: where it starts in the file; -1 when that is before the part read
    text: str  #: stripped; only its ends when it is not whole
    whole: bool  #: False when longer than ``_LINE_AT_MOST``: never parsed here


def _refusing_a_json_document(file: Path) -> None:
    """Refuses a file holding one JSON document (an object, or a list of events) where one
    event per line is read: each of its lines would be rejected as not JSON, a page of
    rejections hiding the one cause, and a line that happens to hold a whole event would be
    published on its own.

    Told from the file's two ends, never the whole of it: a first non-blank line that is a
    list with no line after it, or that opens a list or an object (``[`` or ``{`` alone,
    ``[{...``, ``{"event_id": ...,``) and does not parse alone, where the last non-blank
    line closes one (``]`` or ``}`` alone; or, after ``[``, ``[{...`` or ``{``, ending so and
    not parsing alone). A first line that is a list followed by rows (a header), a broken
    first row followed by rows (the last parses alone), broken first and last rows, or a
    row longer than is read here, is read line by line, as is anything else."""
    if file.suffix.lower() not in {".jsonl", ".ndjson", ".json"}:
        return
    try:
        with file.open("rb") as fh:
            ends = _ends(fh)
    except UnicodeDecodeError:  # not UTF-8: each line is reported as it is read
        return
    if ends is not None and _is_a_document(*ends):
        raise UsageError(f"{file} is a JSON document, not JSON Lines: one event per line (.jsonl)")


def _ends(fh: BinaryIO) -> tuple[_Line, _Line] | None:
    """The first and last non-blank lines; None when the first opens no list or object (a
    row for validation to refuse) or there is none."""
    body = len(codecs.BOM_UTF8) if fh.read(3) == codecs.BOM_UTF8 else 0
    first = _first_line(fh, body)
    if first is None or not first.text.startswith(("[", "{")):
        return None
    return first, _last_line(fh, body)


def _is_a_document(first: _Line, last: _Line) -> bool:
    value = _parsed(first)
    alone = last.start == first.start
    if isinstance(value, dict):
        return False  # a row
    if isinstance(value, list):
        return alone  # else a header line: the rows follow
    if first.text.startswith('{"') and not first.whole:
        return False  # a row longer than is read here: validation says what it is
    if alone and first.whole and first.text.startswith("{"):
        return False  # one row cut short: one rejection, nothing to publish in part
    return _closes_a_document(first, last)  # else a broken first row, then rows


def _first_line(fh: BinaryIO, body: int) -> _Line | None:
    """The first non-blank line from ``body`` on (past a BOM); None in a blank file."""
    fh.seek(body)
    while True:
        start = fh.tell()
        raw = fh.readline(_LINE_AT_MOST)
        if not raw:
            return None
        if raw.strip():
            return _line(start, raw)


def _last_line(fh: BinaryIO, body: int) -> _Line:
    """The last non-blank line, from the file's last ``_LINE_AT_MOST`` bytes at most."""
    end = fh.seek(0, os.SEEK_END)
    start = max(body, end - _LINE_AT_MOST)
    fh.seek(start)
    window = fh.read(end - start).rstrip()
    cut = window.rfind(b"\n")
    if cut >= 0:
        return _line(start + cut + 1, window[cut + 1 :])
    if start == body:
        return _line(start, window)
    # Longer than the window (it may start mid-character): only its end is known.
    return _Line(-1, window.decode("utf-8", "ignore").strip(), whole=False)


def _line(start: int, raw: bytes) -> _Line:
    """``raw`` read from ``start``; cut at ``_LINE_AT_MOST`` unless it ends there."""
    if len(raw) < _LINE_AT_MOST or raw.endswith(b"\n"):
        return _Line(start, raw.decode("utf-8").strip(), whole=True)
    return _Line(start, raw.decode("utf-8", "ignore").strip(), whole=False)


def _closes_a_document(first: _Line, last: _Line) -> bool:
    """``]`` or ``}`` alone; or a last line ending so that does not parse alone, after a first
    line that opens a list (``[``, ``[{...``) or is ``{`` alone, or that is not a row itself
    (``]}``, ``"subjects": [...]}``: a row starts with ``{``). Not two broken rows ending in
    ``}`` (a hand-made export's trailing commas): those are rows to reject."""
    if last.text in ("]", "}"):
        return True
    if not last.text.endswith(("]", "}")) or _parsed(last) is not None:
        return False
    opens = first.text == "{" or first.text.startswith("[")
    return opens or (last.whole and not last.text.startswith("{"))


def _parsed(line: _Line) -> object:
    """``line`` as JSON; None when it is not (cut short, or nested past Python's limit)."""
    if not line.whole or len(line.text) >= _LINE_AT_MOST:
        return None
    try:
        return json.loads(line.text)
    except (ValueError, RecursionError):
        return None


def _unknown_party_hint(settings: Settings, party: str) -> str:
    """What the configured bundle says of ``party`` when it has no keys here: that the bundle
    does not name it, and the nearest party id (``--as wmpp``: a typo, not a party to make
    keys for). Empty when it does, when no bundle is configured (a bundle found in the
    folder may be another partnership's), or when the bundle cannot be read here (an
    SDK-only install has no YAML reader): the keystore's own guidance stands alone then."""
    import difflib

    bundle = settings.policies_dir
    if bundle is None:
        return ""
    try:
        from broker.cli._keys_bundle import policy_parties

        known = policy_parties(bundle)
    except (AccordError, ImportError, OSError, ValueError, RecursionError):
        return ""
    if party in known:
        return ""
    near = difflib.get_close_matches(party, known, n=1)
    maybe = f": did you mean {near[0]}?" if near else ""
    return f" (the bundle {bundle} names no party '{party}'{maybe})"


async def _publish(settings: Settings, party: str, file: Path, from_line: int = 1) -> int:
    from rich.console import Console
    from rich.progress import Progress

    from broker.kafka import access_denied
    from broker.sdk import GoodRow, Publisher, RowProblem, read_export

    err = Console(stderr=True)
    try:
        keys, kafka = keystore(settings, party), kafka_as(settings, party)
        publisher = Publisher(party, keys, kafka, envelope=settings.envelope)
    except KeyStoreError as exc:
        if hint := _unknown_party_hint(settings, party):
            raise KeyStoreError(f"{exc}{hint}") from None
        raise
    async with publisher as pub:
        rows = [r for r in read_export(file, pub.validate) if r.line >= from_line]
        good = [r for r in rows if isinstance(r, GoodRow)]
        problems = [r for r in rows if isinstance(r, RowProblem)]
        # Valid rows the sender likely did not mean so (a concern with an empty justification,
        # which will not override consent): said, never refused.
        warned = [f"line {r.line}: {f} {m}" for r in good for f, m in pub.warnings(r.event)]
        sent, denied = 0, False
        try:
            with Progress(console=err, transient=not err.is_terminal) as progress:
                task = progress.add_task(f"publishing to {pub.topic}", total=len(good))
                for start in range(0, len(good), _CHUNK):
                    chunk = good[start : start + _CHUNK]
                    await pub.publish_many([r.event for r in chunk])
                    sent += len(chunk)
                    progress.update(task, advance=len(chunk))
        except TransportError as exc:
            # Kafka's ACLs refused the first send: nothing went, and no --from-line can help
            # until a grant changes, so the error line (naming the login and topic) is all.
            denied = sent == 0 and access_denied(exc)
            raise
        finally:
            # Also when a send fails part way (the error line follows): which rows were
            # refused, and which went, is what the user needs to finish the job.
            if not denied:
                _report(file, party, problems, good, sent, warned=warned)
    return len(problems)


def _report(
    file: Path,
    party: str,
    problems: list[RowProblem],
    good: list[GoodRow],
    sent: int,
    *,
    warned: list[str],
) -> None:
    # Plain writes: one problem per line, never wrapped, easy to grep.
    for line in warned:
        typer.echo(line, err=True)
    for problem in problems:
        typer.echo(f"rejected {file} {problem.describe()}", err=True)
    unsent = len(good) - sent
    summary = f"{sent} published, {len(problems)} rejected"
    typer.echo(f"{summary}, {unsent} not confirmed" if unsent else summary)
    if unsent:
        first = good[sent].line
        # Each chunk is acknowledged before the next goes, so everything before the failing
        # chunk is on Kafka; of the failing chunk, some may have gone before the error.
        typer.echo(
            f"stopped at line {first}: every event before it was published, from it on not "
            f"all were; finish with 'accord publish --as {party} --from-line {first} {file}' "
            "(an event of it that did go is quarantined by the broker as a replay, never "
            "shared twice; re-sending the whole file does that to every event already "
            "published)",
            err=True,
        )
