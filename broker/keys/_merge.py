"""What ``sign_directory`` takes from the parties' entries files, and what it refuses.

An entries file says what its writer likes: its signature (``_entries.check_possession``)
shows at most that the party wrote it, and a party new to the directory signs nothing
anyone knows. The governance signature then vouches for it to every keystore, so the merge
refuses, whole, what no party's honest export contains: another party's key, a governance
key (those join from the governance keystore itself; one from a file would become a trusted
directory signer everywhere), a party the policy bundle does not know, and a second live
key of a purpose beside one that never expires (a rotation's export always gives the old
key its expiry).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from broker._words import closest
from broker.envelope import KeyInfo, KeyStatus
from broker.errors import KeyStoreError
from broker.principals import Principal

__all__ = ["KeyChange", "changes_since", "check_parties", "listing", "merge_entries"]

_GOVERNANCE = str(Principal.GOVERNANCE)
# Known without the bundle: the principals whose keys sign chain records and disclosures
# beside the parties'. The indexer and admin sign nothing another keystore must trust.
_ALWAYS_KNOWN = frozenset({str(Principal.WORKER), str(Principal.CONSOLE)})
_NOTHING = "nothing was signed"


def _when(at: datetime | None) -> str:
    return "no expiry" if at is None else at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class KeyChange:
    """One key a signed directory adds, or lists otherwise than the master copy did."""

    key: KeyInfo
    before: KeyInfo | None  # None: a key new to the directory

    def describe(self) -> str:
        """One line for the officer who signs it: party, purpose, key id, status, expiry."""
        k = self.key
        head = f"{k.party} {k.purpose.value} key {k.key_id}"
        if self.before is None:
            return f"adds {head}: {k.status.value}, {_when(k.not_after)}"
        was = self.before
        if was.status is not k.status and k.status is not KeyStatus.ACTIVE:
            # Said as what it does: every keystore that imports it refuses the key from then.
            verb = "revokes" if k.status is KeyStatus.REVOKED else "retires"
            return f"{verb} {head}: was {was.status.value}, {_when(was.not_after)}"
        parts = []
        if was.status is not k.status:
            parts.append(f"{was.status.value} -> {k.status.value}")
        if was.not_after != k.not_after:
            parts.append(f"{_when(was.not_after)} -> {_when(k.not_after)}")
        return f"changes {head}: {', '.join(parts)}"


def _check_entry(where: str, k: KeyInfo, parties: Collection[str] | None) -> None:
    if k.party == _GOVERNANCE:
        raise KeyStoreError(
            f"{where}: lists governance key {k.key_id}: governance keys join the directory "
            "from the governance keystore only, never from a file; " + _NOTHING
        )
    if parties is None or k.party in parties or k.party in _ALWAYS_KNOWN:
        return
    near = closest(k.party, [*parties, *sorted(_ALWAYS_KNOWN)])
    hint = f" (did you mean {near}?)" if near else ""
    raise KeyStoreError(
        f"{where}: lists key {k.key_id} of {k.party}, no party of the policy bundle's "
        f"parties.yaml{hint}; {_NOTHING}"
    )


def check_parties(incoming: Sequence[tuple[str, KeyInfo]], parties: Collection[str] | None) -> None:
    """Refuses what no file may list whoever signed it (a governance key, a party the
    bundle does not know); ``merge_entries`` checks the same."""
    for where, k in incoming:
        _check_entry(where, k, parties)


def _second_key(where: str, new: KeyInfo, merged: dict[str, KeyInfo]) -> None:
    """Refuses ``new`` beside an active key of the same party and purpose that never
    expires. ``accord keys rotate`` gives the old key an expiry (the grace) in the same
    export as the new key; an extra key someone slipped in beside it has none to give."""
    lasting = [
        k for k in merged.values()
        if k.key_id != new.key_id and k.party == new.party and k.purpose is new.purpose
        and k.status is KeyStatus.ACTIVE and k.not_after is None
    ]  # fmt: skip
    if lasting:
        raise KeyStoreError(
            f"{where}: gives {new.party} a new active {new.purpose.value} key {new.key_id} "
            f"while its {new.purpose.value} key {lasting[0].key_id} stays active with no "
            "expiry: a rotation's export gives the old key its expiry; check with "
            f"{new.party} out of band, then sign with --allow-second-key if both are meant "
            f"(or retire the old key here first); {_NOTHING}"
        )


def _taken(old: KeyInfo | None, k: KeyInfo) -> KeyInfo:
    """What the master copy lists for ``k`` once merged. Its status wins once no longer
    active (no un-revoking by exporting again). An entries document may end an active key's
    life, or end it sooner, never later or not at all, and never re-date it: a replayed
    older export (signed by the party, so taken) would otherwise lift the expiry a rotation
    gave the old key, or make it the newest key again, which is the one others seal to."""
    if old is None:
        return k
    if old.status is not KeyStatus.ACTIVE:
        return old
    ends = [t for t in (old.not_after, k.not_after) if t is not None]
    # When the status stayed as it was, so does the date it last changed: the file's own
    # date would re-date the key unseen (the change list shows status and expiry only).
    changed_at = old.status_changed_at if k.status is old.status else k.status_changed_at
    return replace(
        k,
        created_at=old.created_at,
        not_after=min(ends) if ends else None,
        status_changed_at=changed_at,
    )


def merge_entries(
    known: Sequence[KeyInfo],
    incoming: Sequence[tuple[str, KeyInfo]],
    *,
    parties: Collection[str] | None = None,
    allow_second_key: bool = False,
) -> tuple[list[KeyInfo], list[KeyChange]]:
    """The master copy ``known`` with ``incoming`` merged in, and what changed.

    A merged entry never undoes a revocation or retirement made here, nor lifts or moves
    later an expiry, nor re-dates a key (``_taken``). ``parties``:
    the policy bundle's party ids, when there is one to check against (Accord's own
    chain writers, worker and console, are always known)."""
    before = {k.key_id: k for k in known}
    merged = dict(before)
    new: list[tuple[str, KeyInfo]] = []
    for where, k in incoming:
        _check_entry(where, k, parties)
        old = before.get(k.key_id)
        if (prior := merged.get(k.key_id)) is not None and prior.party != k.party:
            # A party speaks only for its own keys: relabelled, another's entry would hand
            # that party's key over, or revoke or extend it, under the governance signature.
            raise KeyStoreError(
                f"{where}: lists key {k.key_id} as {k.party}'s, but it is {prior.party}'s; "
                + _NOTHING
            )
        merged[k.key_id] = _taken(old, k)
        if old is None:
            new.append((where, k))
    if not allow_second_key:
        for where, k in new:
            if k.status is KeyStatus.ACTIVE:
                _second_key(where, merged[k.key_id], merged)
    changes = [
        KeyChange(k, before.get(k.key_id))
        for k in sorted(merged.values(), key=lambda k: (k.party, k.purpose.value, k.key_id))
        if (was := before.get(k.key_id)) is None
        or (was.status, was.not_after) != (k.status, k.not_after)
    ]
    return list(merged.values()), changes


def listing(keys: Sequence[KeyInfo]) -> dict[str, dict[str, str | None]]:
    """What a signed directory said of each key, as far as ``KeyChange`` shows it (status
    and expiry; ids only, no key material): kept to compare the next one with."""
    return {k.key_id: {"status": k.status.value, "not_after": _iso(k.not_after)} for k in keys}


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def changes_since(
    last: dict[str, dict[str, str | None]], keys: Sequence[KeyInfo]
) -> list[KeyChange]:
    """What ``keys`` (a directory about to be signed) lists otherwise than ``last`` (the
    ``listing`` of the last one signed): keys added, and keys whose status or expiry
    changed, whether an entries file changed them or ``accord keys revoke|retire`` did in
    the master copy since (which comparing with the master copy alone never shows)."""
    out = []
    for k in sorted(keys, key=lambda k: (k.party, k.purpose.value, k.key_id)):
        was = last.get(k.key_id)
        if was is None:
            out.append(KeyChange(k, None))
            continue
        ends = was.get("not_after")
        before = replace(
            k,
            status=KeyStatus(str(was.get("status"))),
            not_after=None if ends is None else datetime.fromisoformat(ends),
        )
        if (before.status, before.not_after) != (k.status, k.not_after):
            out.append(KeyChange(k, before))
    return out
