"""Two runs of ``redecide`` compared (``accord policy impact``'s second half): counts, per
agreement, recipient and reason, of shares that would stop and start, and per recipient of
the fields it would gain or lose; and, per recorder and state, of the consent records one
bundle counts and the other refuses. Nothing in it names a child: events and records are
counted, never listed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from broker.pipeline._impact_redecide import COUNTS, ConsentTaken, Decided, Key
from broker.policy import Unversioned

__all__ = [
    "AGAIN",
    "ConsentRow",
    "Impact",
    "ImpactRow",
    "compare",
    "consent_changes",
    "view_changes",
]


def view_changes(before: Decided, after: Decided) -> list[str]:
    """How a share that stays a share changes beyond its field names, in words that name
    roles, fields, transforms and agreements only."""
    out = []
    if before.outcome != after.outcome:
        out.append(f"outcome {before.outcome} -> {after.outcome}")
    if before.agreement != after.agreement:
        out.append(f"agreement {before.agreement} -> {after.agreement}")
    was, now = dict(before.roles), dict(after.roles)
    out += [f"people shared: {role} {was.get(role, 0)} -> {now.get(role, 0)}"
            for role in sorted(set(was) | set(now)) if was.get(role) != now.get(role)]  # fmt: skip
    was_t, now_t = dict(before.transforms), dict(after.transforms)
    out += [f"{name}: {_form(before, was_t, name)} -> {_form(after, now_t, name)}"
            for name in sorted(set(was_t) | set(now_t))
            if was_t.get(name) != now_t.get(name)]  # fmt: skip
    if before.scopes != after.scopes:
        out.append("per-person scopes changed")
    return out


def _form(side: Decided, transforms: Mapping[str, str], name: str) -> str:
    """How one side shows a field: its transform, "as is", or "not shared" when that side
    does not send it; "as is" there would read as a pseudonym removed, not a field added."""
    if name in transforms:
        return transforms[name]
    return "as is" if name in side.fields else "not shared"


@dataclass(frozen=True, slots=True)
class ImpactRow:
    """How many decisions move one way, for one agreement, recipient and reason, and the
    agreement that reason is from."""

    change: str  # "stops" (shared now, not under the new bundle) or "starts"
    agreement: str  # the agreement that shares (now, for "stops"; new, for "starts")
    recipient: str
    reason: str  # why it is not shared on the other side ("not-a-candidate" if no decision)
    events: int
    #: the agreement of the other side's decision, whose clause gave ``reason`` (a not_shared
    #: decision names the agreement of its worst clause): another agreement reaching the
    #: same recipient may say why, and the row must not read as the sharing one's reason.
    #: None when that side named none (no decision, or refused before any clause).
    reason_agreement: str | None = None

    def reason_said(self) -> str:
        """The reason, with its agreement when that is not the row's."""
        other = self.reason_agreement
        return f"{self.reason} ({other})" if other and other != self.agreement else self.reason


#: A record the bundle in force refused on arrival that the new one would accept: it was
#: never filed, so putting the new bundle in force does not make it count (``_consent``).
AGAIN = "counts_if_recorded_again"


@dataclass(frozen=True, slots=True)
class ConsentRow:
    """How many consent records of one recorder and state count for decisions under one
    bundle and for none under the other, and why not there."""

    change: str  # "stops" (on file, counts now, not under the new bundle) or ``AGAIN``
    recorded_by: str
    state: str  # given, refused or withdrawn
    reason: str  # why it counts for nothing on the other side (outside-authority, ...)
    records: int

    @property
    def reopens(self) -> bool:
        """A withdrawal or refusal on file that would stop counting: sharing it stopped
        (or kept from starting) would go ahead again, without anyone asking the family."""
        return self.change == "stops" and self.state in ("withdrawn", "refused")

    @property
    def unfiled_stop(self) -> bool:
        """A withdrawal or refusal refused on arrival that the new bundle would accept: it
        stops nothing under either bundle until recorded again. An officer who widened an
        authority to make it count could otherwise read the row as that done."""
        return self.change == AGAIN and self.state in ("withdrawn", "refused")

    def said(self) -> str:
        said = f"{self.recorded_by} {self.state}: {self.records}"
        if self.change != "stops":
            line = (f"{said} refused on arrival and never filed ({self.reason}): would "
                    f"count only if recorded again")  # fmt: skip
            if self.unfiled_stop:
                line += ": sharing continues until it is recorded again under a new id"
            return line
        line = f"{said} would stop counting ({self.reason})"
        return f"{line}: sharing it stopped would resume" if self.reopens else line

    def as_json(self) -> dict[str, object]:
        return {
            "change": self.change,
            "recorded_by": self.recorded_by,
            "state": self.state,
            "reason": self.reason,
            "records": self.records,
            "reopens_sharing": self.reopens,
        }


def consent_changes(taken: Mapping[ConsentTaken, int]) -> list[ConsentRow]:
    """The consent records the bundle in force (first) and the new one (second) take
    differently: on file and counted now, counting for nothing under the new one
    (``stops``); or refused on arrival, so never filed, though the new one would accept
    them (``AGAIN``: they count only if recorded again). A record refused by both, for
    whatever reasons, counts for nothing either way and is no change. Those that would
    reopen sharing first, then the withdrawals and refusals never filed (both marked), then
    those that stop counting, then by recorder and state."""
    moves: Counter[tuple[str, str, str, str]] = Counter()
    for (recorder, state, (before, after)), n in taken.items():
        if before == COUNTS and after != COUNTS:
            moves["stops", recorder, state, after] += n
        elif after == COUNTS and before not in (COUNTS, "replay"):
            moves[AGAIN, recorder, state, before] += n
    rows = [ConsentRow(c, by, state, why, n) for (c, by, state, why), n in moves.items()]
    return sorted(rows, key=lambda r: (not r.reopens, not r.unfiled_stop, r.change != "stops",
                                       r.recorded_by, r.state, r.reason))  # fmt: skip


@dataclass
class Impact:
    current_version: str
    new_version: str
    events: int = 0  # distinct events (sender's topic, id) decided for someone, either bundle
    decisions: int = 0  # (event, recipient) pairs compared
    unchanged: int = 0
    rows: list[ImpactRow] = field(default_factory=list)
    #: recipient -> field -> events in which it would gain (or lose) that field
    gained: dict[str, dict[str, int]] = field(default_factory=dict)
    lost: dict[str, dict[str, int]] = field(default_factory=dict)
    #: recipient -> what else about a share changes (``view_changes``) -> events
    views: dict[str, dict[str, int]] = field(default_factory=dict)
    since: datetime | None = None  # the run's --since
    read: int = 0  # ingress records read, decided or not: ``compared`` + ``not_compared``
    #: ingress records some bundle decided someone for (``Tally``); as many as ``events``
    #: unless a Decide raised on a copy under one bundle only, which then decided a
    #: re-sent copy the other refused as a replay (two records, one event)
    compared: int = 0
    #: ingress records no bundle decided anyone for, by why (``_Redecider.take``)
    not_compared: dict[str, int] = field(default_factory=dict)
    #: agreements changed without a new version (``changed_without_new_version``)
    unversioned: tuple[Unversioned, ...] = ()
    #: consent records one bundle counts and the other does not (``consent_changes``)
    consents: list[ConsentRow] = field(default_factory=list)
    #: senders only the new bundle has whose ingress topic could not be read yet: nothing of
    #: theirs was compared, so "starts" rows cannot show them (the audit record says so too)
    new_senders_not_read: tuple[str, ...] = ()

    @property
    def reopening(self) -> list[ConsentRow]:
        """The withdrawals and refusals on file that would stop counting."""
        return [r for r in self.consents if r.reopens]

    @property
    def unfiled_stops(self) -> list[ConsentRow]:
        """The withdrawals and refusals not on file that the new bundle would accept: they
        stop nothing until recorded again (``ConsentRow.unfiled_stop``)."""
        return [r for r in self.consents if r.unfiled_stop]

    @property
    def nothing_compared(self) -> bool:
        """No decision under either bundle: the run says nothing about the new bundle, and
        must never read as "no decision would change"."""
        return self.decisions == 0

    def not_compared_said(self) -> str:
        """How many event records were read, how many of them were compared, and why the
        rest were not, in one line: reasons and counts only. The two counts add up to the
        records read."""
        since = f" since {self.since.isoformat()}" if self.since is not None else ""
        skipped = sum(self.not_compared.values())
        if not skipped:
            return f"{self.read} event record(s) read{since}, every one compared"
        why = ", ".join(f"{reason} {n}" for reason, n in self.not_compared.items())
        return (f"{self.read} event record(s) read{since}: {self.compared} compared; {skipped} "
                f"decided for no one under either bundle, so not compared: {why}")  # fmt: skip

    def nothing_said(self) -> str:
        """Why nothing was compared, in one line."""
        since = f" since {self.since.isoformat()}" if self.since is not None else ""
        if self.read == 0:
            return f"no retained events{since}: nothing was compared"
        return (f"{self.read} retained event record(s){since}, none decided under either "
                "bundle: nothing was compared")  # fmt: skip

    def as_json(self) -> dict[str, object]:
        return {
            "current_version": self.current_version,
            "new_version": self.new_version,
            "since": self.since.isoformat() if self.since is not None else None,
            "events_read": self.read,
            "events_compared": self.compared,
            "events_not_compared": self.not_compared,
            "nothing_compared": self.nothing_compared,
            "events": self.events,
            "decisions": self.decisions,
            "unchanged": self.unchanged,
            # Before the decisions: the cause of some of them (a withdrawal no longer counting
            # starts shares under consent).
            "consent_records_changed": [r.as_json() for r in self.consents],
            "changes": [
                {
                    "change": r.change,
                    "agreement": r.agreement,
                    "recipient": r.recipient,
                    "reason": r.reason,
                    "reason_agreement": r.reason_agreement,
                    "events": r.events,
                }
                for r in self.rows
            ],
            "fields_gained": self.gained,
            "fields_lost": self.lost,
            "views_changed": self.views,
            "unversioned_agreements": [u.as_json() for u in self.unversioned],
            "new_senders_not_read": list(self.new_senders_not_read),
        }


_NONE = Decided(False, "not_shared", "not-a-candidate", None, frozenset())


def compare(
    current: dict[Key, Decided],
    new: dict[Key, Decided],
    *,
    versions: tuple[str, str],
    consents: Mapping[ConsentTaken, int] | None = None,
) -> Impact:
    """The differences between two runs over the same records; with ``consents`` (the runs'
    ``Tally.consents``), the consent records they took differently too."""
    impact = Impact(*versions)
    impact.consents = consent_changes(consents or {})
    # Keyed by the other side's agreement too: its reason is that decision's, and read
    # beside the sharing agreement alone it was taken for that agreement's clause.
    moves: Counter[tuple[str, str, str, str, str | None]] = Counter()
    gained: dict[str, Counter[str]] = {}
    lost: dict[str, Counter[str]] = {}
    views: dict[str, Counter[str]] = {}
    keys = set(current) | set(new)
    impact.events = len({(topic, event) for topic, event, _ in keys})
    impact.decisions = len(keys)
    for key in keys:
        before, after = current.get(key, _NONE), new.get(key, _NONE)
        recipient = key[2]
        if before.shares and not after.shares:
            moves["stops", before.agreement or "", recipient, after.reason or "",
                  after.agreement] += 1  # fmt: skip
        elif after.shares and not before.shares:
            moves["starts", after.agreement or "", recipient, before.reason or "",
                  before.agreement] += 1  # fmt: skip
        elif before.shares and after.shares and before != after:
            for name in after.fields - before.fields:
                gained.setdefault(recipient, Counter())[name] += 1
            for name in before.fields - after.fields:
                lost.setdefault(recipient, Counter())[name] += 1
            for change in view_changes(before, after):
                views.setdefault(recipient, Counter())[change] += 1
        else:
            impact.unchanged += 1
    ordered = sorted(moves.items(), key=lambda kv: (*kv[0][:4], kv[0][4] or ""))
    impact.rows = [ImpactRow(c, a, r, why, n, other) for (c, a, r, why, other), n in ordered]
    impact.gained = {r: dict(sorted(c.items())) for r, c in sorted(gained.items())}
    impact.lost = {r: dict(sorted(c.items())) for r, c in sorted(lost.items())}
    impact.views = {r: dict(sorted(c.items())) for r, c in sorted(views.items())}
    return impact
