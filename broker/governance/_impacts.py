"""Runs of ``accord policy impact`` as the audit index holds them: who ran one, when, the
two bundle versions compared and what it counted (``accord audit report`` and the console's
agreements page list them).

A ``policy_impact`` record holds counts, versions, party, agreement and reason ids and the
login name of whoever ran it (``broker.pipeline.record_impact``), never a child: a run
re-decides every retained event, so a list of them would be a list of children. Only
totals are taken from it here, and the index only holds those a worker chain signed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from broker.governance._grounds import str_or_none

if TYPE_CHECKING:
    from broker.audit import AuditRecord
    from broker.governance._store import AuditStore, Window


@dataclass(frozen=True, slots=True)
class PolicyImpactRun:
    """One run of ``accord policy impact``: the bundle in force (``current_version``)
    against the one proposed (``new_version``), in counts."""

    at: datetime
    by: str  # the login name it ran under, as the record's ``officer``
    chain: str  # the run's own chain, ``worker:impact-<id>``, as the command printed it
    current_version: str
    new_version: str
    since: str | None  # the run's --since, if it had one
    events_read: int
    events: int  # distinct events decided for someone under either bundle
    decisions: int  # (event, recipient) pairs compared
    unchanged: int
    stops: int  # events (per agreement and recipient) shared now, not under the new bundle
    starts: int  # and the other way
    consent_records_changed: int  # consent records one bundle counts and the other does not
    # Of those, withdrawals and refusals on file that would stop counting: sharing they
    # stopped would resume (the command warns of them).
    reopening: int
    unversioned_agreements: int  # agreements changed without a new version
    #: senders only the proposed bundle has, whose topic was not read: none of their events
    #: was compared, so the run's "starts" leave them out (records since 2026-12-08)
    new_senders_not_read: tuple[str, ...] = ()

    @property
    def nothing_compared(self) -> bool:
        """No decision under either bundle: the run says nothing about the new bundle and
        must never read as "no decision would change"."""
        return self.decisions == 0

    @property
    def changed(self) -> int:
        """Decisions that come out differently under the new bundle."""
        return self.decisions - self.unchanged

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "by": self.by,
            "chain": self.chain,
            "current_version": self.current_version,
            "new_version": self.new_version,
            "since": self.since,
            "events_read": self.events_read,
            "events": self.events,
            "decisions": self.decisions,
            "unchanged": self.unchanged,
            "changed": self.changed,
            "nothing_compared": self.nothing_compared,
            "stops": self.stops,
            "starts": self.starts,
            "consent_records_changed": self.consent_records_changed,
            "reopening": self.reopening,
            "unversioned_agreements": self.unversioned_agreements,
            "new_senders_not_read": list(self.new_senders_not_read),
        }


def policy_impact_runs(store: AuditStore, window: Window) -> list[PolicyImpactRun]:
    """Runs of ``accord policy impact`` recorded in the window, newest first."""
    return [impact_run(rec) for rec in store.policy_impacts(window)]


def impact_run(rec: AuditRecord) -> PolicyImpactRun:
    """A ``policy_impact`` record's totals. A count the record lacks or holds as something
    else reads as 0: a run's line is still listed, never dropped for one odd field."""
    data = rec.data
    changes = _dicts(data.get("changes"))
    consents = _dicts(data.get("consent_records_changed"))
    return PolicyImpactRun(
        at=rec.at,
        by=str(data.get("officer") or ""),
        chain=rec.chain,
        current_version=str(data.get("current_version") or ""),
        new_version=str(data.get("new_version") or ""),
        since=str_or_none(data.get("since")),
        events_read=_count(data.get("events_read")),
        events=_count(data.get("events")),
        decisions=_count(data.get("decisions")),
        unchanged=_count(data.get("unchanged")),
        stops=sum(_count(c.get("events")) for c in changes if c.get("change") == "stops"),
        starts=sum(_count(c.get("events")) for c in changes if c.get("change") == "starts"),
        consent_records_changed=sum(_count(c.get("records")) for c in consents),
        reopening=sum(_count(c.get("records")) for c in consents if c.get("reopens_sharing")),
        unversioned_agreements=len(_dicts(data.get("unversioned_agreements"))),
        new_senders_not_read=tuple(
            p for p in _list(data.get("new_senders_not_read")) if isinstance(p, str)
        ),
    )


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _dicts(value: object) -> list[Mapping[str, object]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []
