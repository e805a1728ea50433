"""The worker's keystore as its ``keys_loaded`` records say, for ``accord audit report``:
which key directory (serial) was in use from when, and which keys each change added,
revoked, retired, let expire or dropped, by party.

A worker writes the record on every chain it holds (``broker.pipeline._keyset``): at each
chain's opening (serial and counts) and whenever its keystore changes (the change). So one
change is many records, one per chain, and each restart or rebalance is more: the report
groups them into one line per directory in use (``opened``) and one per change, with when
it was first and last recorded and on how many chains. Party ids and key ids only: the
record holds no key material and names no one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from broker.audit import AuditRecord
    from broker.governance._store import AuditStore, Window


@dataclass(frozen=True, slots=True)
class KeysLoaded:
    """One directory in use (``occasion`` ``opened``) or one change to it (``changed``), as
    recorded on ``chains`` chains from ``first`` to ``last``."""

    #: What a change lists, by party, in the order the report prints them.
    CHANGES: ClassVar[tuple[str, ...]] = ("added", "revoked", "retired", "expired", "dropped")

    occasion: str
    serial: int
    serial_before: int | None  # a change's: the serial the worker held before it
    signer: str | None  # the governance key that signed the directory, if the store kept it
    first: datetime
    last: datetime
    chains: int
    # A change's keys, by kind of change, then party: key ids (empty for ``opened``).
    changes: Mapping[str, Mapping[str, tuple[str, ...]]]

    def count(self, change: str) -> int:
        return sum(len(ids) for ids in self.changes.get(change, {}).values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "occasion": self.occasion,
            "first_at": self.first.isoformat(),
            "last_at": self.last.isoformat(),
            "chains": self.chains,
            "serial": self.serial,
            "serial_before": self.serial_before,
            "signer_key_id": self.signer,
            **{c: {p: list(i) for p, i in self.changes.get(c, {}).items()} for c in self.CHANGES},
        }


def keys_loaded(store: AuditStore, window: Window) -> list[KeysLoaded]:
    """The directories in use and the changes to them recorded in the window, oldest first."""
    groups: dict[str, tuple[KeysLoaded, set[str]]] = {}
    for rec in store.keys_loaded(window):
        line = _line(rec)
        key = json.dumps([line.occasion, line.serial, line.serial_before, line.signer,
                          line.changes], sort_keys=True)  # fmt: skip
        if key not in groups:
            groups[key] = (line, {rec.chain})
            continue
        seen, chains = groups[key]
        chains.add(rec.chain)
        first, last = min(seen.first, line.first), max(seen.last, line.last)
        groups[key] = (_with(seen, first, last, len(chains)), chains)
    return sorted((line for line, _ in groups.values()), key=lambda x: (x.first, x.occasion))


def _with(line: KeysLoaded, first: datetime, last: datetime, chains: int) -> KeysLoaded:
    return KeysLoaded(line.occasion, line.serial, line.serial_before, line.signer, first, last,
                      chains, line.changes)  # fmt: skip


def _line(rec: AuditRecord) -> KeysLoaded:
    """A record's line; a member it lacks or holds as something else reads as none: the line
    is still listed, never dropped for one odd field."""
    data = rec.data
    before = data.get("serial_before")
    signer = data.get("signer_key_id")
    return KeysLoaded(
        occasion=str(data.get("occasion") or ""),
        serial=_int(data.get("serial")),
        serial_before=_int(before) if isinstance(before, int) else None,
        signer=signer if isinstance(signer, str) else None,
        first=rec.at,
        last=rec.at,
        chains=1,
        changes={c: _ids(data.get(c)) for c in KeysLoaded.CHANGES if _ids(data.get(c))},
    )


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _ids(value: object) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, Mapping):
        return {}
    return {
        str(party): tuple(str(i) for i in ids)
        for party, ids in sorted(value.items())
        if isinstance(ids, list) and ids
    }
