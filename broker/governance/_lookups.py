"""Every look-up of audit data by a person is itself an audit record (``console_query``).

The governance console writes one before it shows any page with audit data; ``accord audit
subject`` and ``accord audit report`` write the same record before they print anything. The
record names the authenticated officer, what was looked at, the subjects on it and why, so a
child's disclosure log also answers "who looked at this?", whichever tool was used.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from broker.audit import AuditKind, AuditRecord
from broker.governance._append import AuditSink
from broker.governance._verify_vouch import VERIFIED_HEADS, VerifiedHead, verified_heads_data

if TYPE_CHECKING:
    from broker.governance._store import AuditStore


class LookupPurpose(enum.StrEnum):
    """Why an officer opens a child's disclosure log: recorded with the look-up."""

    SUBJECT_ACCESS_REQUEST = "subject_access_request"
    OVERRIDE_REVIEW = "override_review"
    COMPLAINT = "complaint"
    AUDIT_SAMPLE = "audit_sample"
    CARE_PROCEEDINGS = "care_proceedings"


class ReportPurpose(enum.StrEnum):
    """Why an officer runs the governance report: recorded with the look-up."""

    OVERSIGHT = "oversight"
    OVERRIDE_REVIEW = "override_review"
    AUDIT_SAMPLE = "audit_sample"
    COMPLAINT = "complaint"
    SECURITY_INCIDENT = "security_incident"  # e.g. what a stolen key's holder got accepted


async def record_query(
    sink: AuditSink,
    *,
    officer: str,
    page: str,
    subject_keys: tuple[str, ...] = (),
    detail: dict[str, str] | None = None,
    verified_heads: Mapping[str, VerifiedHead] | None = None,
) -> AuditRecord:
    """Write "``officer`` looked at ``page`` (about these subjects)" to the audit log.

    ``verified_heads``: a passing verification's heads (``VerifySummary.heads``), which the
    record then vouches for: a later verification fails an index that holds less.

    Returns once the record is committed with its checkpoint; a caller shows nothing until
    then, and nothing at all if this raises.
    """
    data: dict[str, object] = {"officer": officer, "page": page}
    if detail:
        data["detail"] = dict(detail)
    if verified_heads:
        data[VERIFIED_HEADS] = verified_heads_data(verified_heads)
    records = await sink.append(
        lambda w: [w.append(AuditKind.CONSOLE_QUERY, subject_keys=subject_keys, data=data)]
    )
    return records[0]


#: Where a verification run (``VerifyRun.via``) or a look-up was made, as the console's pages
#: and ``accord audit subject`` say it ("from the console"): one wording everywhere.
VIA_WORDS = {"console": "the console", "cli": "the command line"}


def lookup_via(record: AuditRecord) -> str:
    """Where a ``console_query`` record's look-up was made, ``cli`` or ``console`` (a key of
    :data:`VIA_WORDS`): the command line records its pages as ``cli.subject``,
    ``cli.report``, ``cli.verify``, on its own chain ``console:<host>.cli``."""
    page = str(record.data.get("page") or "")
    return "cli" if page.startswith("cli.") or record.chain.endswith(".cli") else "console"


def earlier_lookups(
    store: AuditStore, subject_keys: Iterable[str], own: AuditRecord
) -> list[AuditRecord]:
    """The look-ups of any of ``subject_keys`` made before ``own`` (the look-up being made,
    written before anything is shown), each once, oldest first, as the console's subject page
    and ``accord audit subject`` list them. Not ``own``; nor one written after it (another
    officer's, indexed while this one ran): it would be called earlier. A look-up in the same
    second on another chain cannot be ordered and is listed."""
    found = {r.hash: r for k in subject_keys for r in store.subject_lookups(k)}
    found.pop(own.hash, None)
    return sorted((r for r in found.values() if r.at <= own.at),
                  key=lambda r: (r.at, r.chain, r.seq))  # fmt: skip
