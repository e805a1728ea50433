"""Appending to and verifying hash chains of audit records, with signed checkpoints.

Each chain is written by exactly one writer at a time (the worker that owns an input
partition, the indexer, the console), so appends need no coordination. A checkpoint record
carries an Ed25519 signature by the chain writer's key over ``(chain, seq, hash)`` of the record
before it; verifying against the newest checkpoint detects truncation of everything up to it.
"""

from __future__ import annotations

import base64
import hashlib
import json.encoder
from abc import abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
import rfc8785

from broker.audit._record import GENESIS, RECORD_DOMAIN, AuditKind, AuditRecord
from broker.errors import ChainBroken


class CheckpointSigner(Protocol):
    @property
    def key_id(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...


class PreEncoded(Mapping[str, Any]):
    """Audit data that writes its own RFC 8785 text, for the hot path's biggest records.

    A read-only mapping (what the data is) whose ``jcs()`` is exactly ``rfc8785.dumps`` of
    that mapping, as text: the chain takes it as written, so each implementation is held to
    this by property tests of its own (the worker's decisions: tests/unit/pipeline/
    test_encoding.py).
    """

    __slots__ = ()

    @abstractmethod
    def jcs(self) -> str: ...


class CheckpointVerifier(Protocol):
    def verify(self, chain: str, key_id: str, data: bytes, signature: bytes) -> bool:
        """True only when ``signature`` is valid for ``data`` under ``key_id``, a key of the
        principal that writes ``chain``."""
        ...


_encode_str = json.encoder.encode_basestring

# The C encoder with JCS's layout. For the values _plain admits it writes exactly what RFC 8785
# does, some seven times faster than rfc8785's pure Python; made once, as json.dumps would
# build an encoder on every call.
_c_json = json.JSONEncoder(
    ensure_ascii=False, check_circular=False, allow_nan=False, sort_keys=True,
    separators=(",", ":"),
).encode  # fmt: skip


def _fast_json(value: Any) -> str:
    """What ``_c_json`` writes for a value :func:`_plain` admits, some eight times faster.

    For those values (no float, integers within JCS's exact range, string keys within the BMP,
    whose UTF-8 order is their code point order) orjson escapes and sorts as the C encoder
    does; what it will not write (a lone surrogate, a key of a ``str`` subclass) the C encoder
    writes, or refuses, as it always has.
    """
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONEncodeError:
        return _c_json(value)


# I-JSON's exact integers (RFC 7493 §2.2), the only ones rfc8785 will canonicalise.
_SAFE_INT = 2**53 - 1


def _plain(value: Any) -> bool:
    """Whether the C encoder writes ``value`` byte for byte as RFC 8785 does.

    It does for strings (both escape the same characters, with lowercase hex), booleans,
    None and exact integers, and for arrays and objects of them, unless an object key leaves
    the BMP: JCS sorts keys by UTF-16 code unit, Python by code point, and the two orders
    differ only there. Floats never pass: JCS writes numbers as ECMAScript does (``0.00001``,
    not ``1e-05``).
    """
    t = type(value)
    if t is str or t is bool or value is None:
        return True
    if t is int:
        return bool(-_SAFE_INT <= value <= _SAFE_INT)
    if t is dict:
        return _plain_object(value)
    if t is list or t is tuple:
        try:
            "".join(value)  # the usual array, all strings, checked at C speed
        except TypeError:
            return all(map(_plain, value))
        return True
    return False


def _plain_object(obj: dict[Any, Any]) -> bool:
    try:
        keys = "".join(obj)
    except TypeError:
        return False  # a non-string key: json.dumps would stringify it, JCS refuses
    if not keys.isascii() and max(keys) > "\uffff":
        return False
    for v in obj.values():
        t = type(v)
        if not (t is str or t is bool or v is None or _plain(v)):
            return False
    return True


def jcs_text(value: Any) -> str:
    """RFC 8785 itself, for the values the C encoder would write otherwise.

    A verifier canonicalises what it parses, so the text must also survive a parse: the
    float 1e16, written ``10000000000000000``, comes back as an integer beyond 2**53 that no
    canonicaliser takes. Refusing it here keeps every record verifiable.
    """
    try:
        text = rfc8785.dumps(value)
        again = rfc8785.dumps(json.loads(text))
    except rfc8785.CanonicalizationError as exc:
        raise ValueError(f"audit data must be canonical JSON (RFC 8785): {exc}") from exc
    if again != text:
        raise ValueError("audit data does not survive a JSON round trip unchanged")
    return text.decode("utf-8")


def _json(value: Any) -> str:
    # Strings skip any encoder set-up; the C string encoder escapes exactly as JCS does.
    if value is None:
        return "null"
    if type(value) is str:
        return _encode_str(value)
    return _fast_json(value) if _plain(value) else jcs_text(value)


def _json_strs(values: Iterable[str]) -> str:
    # What JCS writes for a list of strings, without an encoder's set-up.
    items = values if type(values) is tuple else tuple(values)
    try:
        "".join(items)  # strings only, checked at C speed
    except TypeError:
        return _json(list(items))  # let the general encoder accept or refuse the odd one out
    try:
        return orjson.dumps(items).decode()
    except orjson.JSONEncodeError:  # a lone surrogate: written as ever, refused as UTF-8 later
        return "[" + ",".join(map(_encode_str, items)) + "]"


def _utf16(key: str) -> bytes:
    return key.encode("utf-16-be")


# The fast path writes a record's members in this order, which must be JCS's (by UTF-16 code
# unit) for AuditRecord's fields; ``hash`` sits between ``event_id`` and ``kind``, so the body
# and the whole record share the text either side of it.
_MEMBERS = ("at", "chain", "data", "event_id", "hash", "kind", "party", "prev_hash", "seq",
            "subject_keys")  # fmt: skip
if tuple(sorted(AuditRecord.model_fields, key=_utf16)) != _MEMBERS:
    raise RuntimeError("AuditRecord's fields changed: update ChainWriter.append_encoded")

_KIND_JSON = {kind: _encode_str(kind.value) for kind in AuditKind}


def _record_digest(body: bytes) -> str:
    return hashlib.sha256(RECORD_DOMAIN + body).hexdigest()


#: What a checkpoint's signature covers: ``schemas/audit-chain.md`` §5.
CHECKPOINT_DOMAIN = b"accord/audit-checkpoint/v1\x00"


def checkpoint_message(chain: str, seq: int, head_hash: str) -> bytes:
    return CHECKPOINT_DOMAIN + rfc8785.dumps({"chain": chain, "seq": seq, "hash": head_hash})


class ChainWriter:
    """Builds the next records of one chain; the caller persists them (Kafka, a table)."""

    def __init__(
        self,
        chain: str,
        *,
        clock: Callable[[], datetime],
        next_seq: int = 0,
        prev_hash: str = GENESIS,
    ) -> None:
        if not 1 <= len(chain) <= 200:
            raise ValueError("an audit chain name has 1 to 200 characters")
        self.chain = chain
        self._chain_json = _json(chain)
        self._clock = clock
        self.next_seq = next_seq
        self.prev_hash = prev_hash
        # The last second this writer wrote, and its text up to the seconds: records come many
        # a second, and ``isoformat`` is most of a time's cost. Kept per writer, not per
        # module, so no other writer or thread can change it between its read and its use.
        self._last_second: tuple[tuple[int, ...], str] = ((), "")

    @classmethod
    def resume_after(
        cls, last: AuditRecord | None, *, clock: Callable[[], datetime], chain: str
    ) -> ChainWriter:
        """Continue a chain whose last durable record is ``last`` (None: a new chain)."""
        if last is None:
            return cls(chain, clock=clock)
        return cls(chain, clock=clock, next_seq=last.seq + 1, prev_hash=last.hash)

    def _json_time(self, at: datetime) -> str:
        # The log keeps UTC only, written as pydantic writes a datetime: ISO 8601 with "Z".
        if at.tzinfo is not UTC:  # the worker's clock gives UTC already
            if at.tzinfo is None:
                raise ValueError("an audit clock must give timezone-aware times")
            at = at.astimezone(UTC)
        second = (at.second, at.minute, at.hour, at.day, at.month, at.year)
        last, text = self._last_second
        if second != last:
            text = '"' + at.isoformat(timespec="seconds")[:-6]
            self._last_second = (second, text)
        us = at.microsecond
        return f'{text}.{us:06d}Z"' if us else text + 'Z"'

    def append(
        self,
        kind: AuditKind,
        *,
        event_id: str | None = None,
        party: str | None = None,
        subject_keys: Iterable[str] = (),
        data: dict[str, Any] | PreEncoded | None = None,
    ) -> AuditRecord:
        encoded = self.append_encoded(
            kind, event_id=event_id, party=party, subject_keys=subject_keys, data=data
        )
        # Parsing the bytes back validates every field: the slow, careful path for the few
        # records written outside the worker's hot loop.
        return AuditRecord.model_validate_json(encoded)

    def append_encoded(
        self,
        kind: AuditKind,
        *,
        event_id: str | None = None,
        party: str | None = None,
        subject_keys: Iterable[str] = (),
        data: dict[str, Any] | PreEncoded | None = None,
    ) -> bytes:
        """Append, and return the record's canonical bytes (what goes on the topic).

        The worker writes about ten records per event, so this is its hot path: no pydantic,
        each field JSON-encoded once, and ``data`` by the C encoder whenever that writes what
        RFC 8785 would (:func:`_plain`), by ``rfc8785`` otherwise. JCS writes an object's
        members in key order, so the body (everything but ``hash``) and the whole record share
        the members' encodings, with ``hash`` slotted into its sorted place. ``data`` must be
        JSON-ready already (strings, numbers, booleans, None, lists, dicts with str keys), or
        a :class:`PreEncoded` that writes its own text (the worker's ``decided`` records);
        anything else, and any number RFC 8785 cannot write exactly (an integer beyond
        ±(2**53 - 1), NaN), fails here with ``ValueError``. Property tests hold this encoding
        byte-identical to ``rfc8785.dumps`` of the parsed record and to
        ``AuditRecord.to_bytes()``.
        """
        if data is None:
            data_json = "{}"
        elif type(data) is dict and _plain_object(data):
            data_json = _fast_json(data)
        elif isinstance(data, PreEncoded):
            data_json = data.jcs()
        else:
            data_json = jcs_text(data)
        head = (
            f'{{"at":{self._json_time(self._clock())},"chain":{self._chain_json},"data":{data_json},'
            f'"event_id":{_json(event_id)}'
        )
        tail = (
            f',"kind":{_KIND_JSON[kind]},"party":{_json(party)},'
            f'"prev_hash":{_encode_str(self.prev_hash)},"seq":{self.next_seq},'
            f'"subject_keys":{_json_strs(subject_keys)}}}'
        )
        digest = _record_digest((head + tail).encode("utf-8"))
        self.next_seq += 1
        self.prev_hash = digest
        return f'{head},"hash":"{digest}"{tail}'.encode()

    def checkpoint(self, signer: CheckpointSigner) -> AuditRecord:
        """Sign the chain's head; the checkpoint itself is the next record of the chain."""
        if self.next_seq == 0:
            raise ValueError("nothing to checkpoint on an empty chain")
        covered = self.next_seq - 1
        sig = signer.sign(checkpoint_message(self.chain, covered, self.prev_hash))
        return self.append(
            AuditKind.CHECKPOINT,
            data={
                "covers_seq": covered,
                "covers_hash": self.prev_hash,
                "key_id": signer.key_id,
                "signature": base64.b64encode(sig).decode("ascii"),
            },
        )


@dataclass(frozen=True)
class ChainReport:
    chain: str
    records: int
    head_seq: int
    head_hash: str
    last_checkpoint_seq: int | None  # the newest checkpoint that verifies
    #: Checkpoints that do not verify (a key since revoked, say) but that a later valid
    #: checkpoint covers: records of the chain that vouch for nothing (§6 rule 6).
    unvouched: tuple[int, ...] = ()


def verify_chain(
    records: Iterable[AuditRecord],
    verifier: CheckpointVerifier,
    *,
    expect_chain: str | None = None,
) -> ChainReport:
    """Verify one chain in order; raise :class:`ChainBroken` naming the first bad ``seq``.

    Detects a modified record (its hash), a deleted, inserted or reordered record (sequence
    numbers and ``prev_hash`` links), a forged checkpoint (signature), and truncation: the
    newest checkpoint promises that the chain reached ``covers_seq``, so a chain ending before
    a checkpoint's own position cannot carry it, and a chain cut inside signed history fails
    the link from the checkpoint.

    A checkpoint that does not verify (its key since revoked, say) vouches for nothing, but
    is a fault only if no later valid checkpoint covers it (schemas/audit-chain.md §6 rule
    6): the writer's later signature commits, through the hash links, to every record
    before it, that checkpoint included. Such checkpoints are reported in ``unvouched``.
    """
    expected_seq = 0
    prev = GENESIS
    chain = expect_chain
    before_prev: str | None = None
    last_cp: int | None = None
    pending: ChainBroken | None = None  # the first checkpoint since last_cp that failed
    unvouched: list[int] = []
    count = 0
    for rec in records:
        if chain is None:
            chain = rec.chain
        if rec.chain != chain:
            raise pending or ChainBroken(
                rec.seq, f"record belongs to chain {rec.chain!r}, not {chain!r}", chain=chain
            )
        if rec.seq == expected_seq and rec.prev_hash != prev and rec.prev_hash == before_prev:
            # The record links past its predecessor: that one was slipped in, name it.
            raise pending or ChainBroken(
                expected_seq - 1, "inserted record: the next one links past it", chain=chain
            )
        try:
            check_link(rec, expected_seq, prev)
        except ChainBroken:
            if pending is not None:
                raise pending from None
            raise
        if rec.kind is AuditKind.CHECKPOINT:
            try:
                _verify_checkpoint(rec, prev, verifier)
            except ChainBroken as exc:
                pending = pending or exc
                unvouched.append(rec.seq)
            else:
                last_cp, pending = rec.seq, None
        before_prev, prev = prev, rec.hash
        expected_seq += 1
        count += 1
    if pending is not None:
        raise pending
    return ChainReport(chain or "", count, expected_seq - 1, prev, last_cp, tuple(unvouched))


def check_next(
    rec: AuditRecord, expected_seq: int, prev_hash: str, verifier: CheckpointVerifier
) -> None:
    """Check that ``rec`` validly follows a chain whose head is ``(expected_seq - 1, prev_hash)``.

    The one-record step of :func:`verify_chain`, for verifiers that see a chain a record at a
    time (the audit indexer): a checkpoint must verify.
    """
    check_link(rec, expected_seq, prev_hash)
    if rec.kind is AuditKind.CHECKPOINT:
        _verify_checkpoint(rec, prev_hash, verifier)


def check_link(rec: AuditRecord, expected_seq: int, prev_hash: str) -> None:
    """§6 rules 2 to 4: ``rec`` sits at ``expected_seq``, links to ``prev_hash``, and its
    content matches its hash (a checkpoint's signature is not checked)."""
    chain = rec.chain
    if rec.seq != expected_seq:
        raise ChainBroken(
            expected_seq, f"expected seq {expected_seq}, found {rec.seq}", chain=chain
        )
    if rec.prev_hash != prev_hash:
        raise ChainBroken(rec.seq, "prev_hash does not match the previous record", chain=chain)
    if rec.computed_hash() != rec.hash:
        raise ChainBroken(rec.seq, "record content does not match its hash", chain=chain)


def verify_truncation(report: ChainReport, signed_head_seq: int | None) -> None:
    """Fail when a chain is shorter than a checkpoint known from elsewhere says it was."""
    if signed_head_seq is not None and report.head_seq < signed_head_seq:
        raise ChainBroken(
            report.head_seq + 1,
            f"chain ends at seq {report.head_seq} but a signed checkpoint covers {signed_head_seq}",
            chain=report.chain or None,
        )


def _verify_checkpoint(rec: AuditRecord, prev_hash: str, verifier: CheckpointVerifier) -> None:
    data = rec.data
    try:
        covers_seq = int(data["covers_seq"])
        covers_hash = str(data["covers_hash"])
        key_id = str(data["key_id"])
        sig = base64.b64decode(str(data["signature"]), validate=True)
    except (KeyError, ValueError, TypeError) as exc:
        raise ChainBroken(rec.seq, "checkpoint is malformed", chain=rec.chain) from exc
    if covers_seq != rec.seq - 1 or covers_hash != prev_hash:
        raise ChainBroken(
            rec.seq, "checkpoint does not cover the record before it", chain=rec.chain
        )
    message = checkpoint_message(rec.chain, covers_seq, covers_hash)
    if not verifier.verify(rec.chain, key_id, message, sig):
        raise ChainBroken(rec.seq, "checkpoint signature does not verify", chain=rec.chain)
