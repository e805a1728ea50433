"""``accord audit``'s options and arguments, shared by its commands.

Typer resolves a command's string annotations in its module's globals: ``_audit`` imports
each of these by name.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer


class Format(enum.StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"
    HTML = "html"


class ReportFormat(enum.StrEnum):
    TABLE = "table"
    JSON = "json"


# --db means something different to each command: each gets help that says only its own.
_INDEX_URL = (
    "Audit index URL: sqlite:///PATH or postgresql://… (default: ACCORD_AUDIT_DB, else "
    "<home>/audit.db)."
)
#: verify, subject and report: they read an index; only the configured one is theirs to change.
Db = Annotated[
    str | None,
    typer.Option(
        "--db",
        help=f"{_INDEX_URL} Any other index (a copy) is opened read-only: never caught up, "
        "migrated or changed.",
    ),
]
#: index: fills the index named.
IndexDb = Annotated[str | None, typer.Option("--db", help=f"The index to fill. {_INDEX_URL}")]
#: review-override: writes the review into the live index, so a copy is refused.
ReviewDb = Annotated[
    str | None,
    typer.Option(
        "--db",
        help=f"{_INDEX_URL} Only the configured index: a copy is refused (a review goes into "
        "the live log).",
    ),
]
Follow = Annotated[
    bool, typer.Option("--follow/--once", help="Keep indexing new records, or stop at the end.")
]
MetricsHost = Annotated[
    str | None,
    typer.Option(
        help="With --follow: serve /metrics, /livez and /readyz on this address (default "
        "127.0.0.1, or ACCORD_INDEXER__METRICS_HOST)."
    ),
]
MetricsPort = Annotated[
    int | None,
    typer.Option(
        help="With --follow: ...on this port (default ACCORD_INDEXER__METRICS_PORT; unset: none).",
        min=0,
        max=65535,
    ),
]
Heads = Annotated[
    Path | None,
    typer.Option(
        help="With --from-topic: signed heads saved by an earlier --save-heads; the topic must "
        "still hold everything they cover (an emptied or shortened topic fails).",
    ),
]
SaveHeads = Annotated[
    Path | None,
    typer.Option(help="After a successful verify, save each chain's newest signed checkpoint."),
]
FromTopic = Annotated[
    bool,
    typer.Option(
        "--from-topic",
        help="Verify the accord.audit topic itself (with --db, the index vouches against "
        "truncation).",
    ),
]
NhsNumber = Annotated[
    str | None,
    typer.Option("--nhs-number", help="The child's NHS number (or name and date of birth)."),
]
GivenName = Annotated[
    str | None,
    typer.Option(
        "--given-name",
        help="Without an NHS number: the child's given name, with --family-name and --dob. "
        "Case, spacing, punctuation and accents are ignored, except that an accented name's "
        "records from before 2026-12-05 are found only when it is typed with its accents.",
    ),
]
FamilyName = Annotated[
    str | None, typer.Option("--family-name", help="...the child's family name.")
]
Dob = Annotated[str | None, typer.Option("--dob", help="...their date of birth (YYYY-MM-DD).")]
Postcode = Annotated[
    str | None,
    typer.Option(
        "--postcode",
        help="...and their postcode, if known. A record decided with a postcode (since "
        "2026-12-05) is filed under a key that needs it: without --postcode, only records "
        "decided without one are found.",
    ),
]
Fmt = Annotated[Format, typer.Option("--format", help="Output format.")]
RepFmt = Annotated[ReportFormat, typer.Option("--format", help="Output format.")]
Since = Annotated[
    str | None, typer.Option("--since", help="From this date or ISO date-time (UTC if no zone).")
]
Until = Annotated[
    str | None,
    typer.Option("--until", help="Up to this date (inclusive) or ISO date-time (exclusive)."),
]
Policies = Annotated[
    Path | None,
    typer.Option(
        "--policies",
        help="Policy bundle, for agreements expiring within 60 days (default: "
        "ACCORD_POLICIES, else policies/ here).",
    ),
]
EventId = Annotated[str, typer.Argument(help="The event id of the override decision.")]
Recipient = Annotated[str, typer.Option("--recipient", help="The party it was shared with.")]
Reference = Annotated[
    str | None,
    typer.Option(
        "--reference",
        help="The IG case or ticket where your reasoning is kept, by its case number (e.g. "
        "IG-2026-0142: an identifier, not a note or a name; the audit log keeps no free text).",
    ),
]


# Mirrors of broker.governance's LookupPurpose and ReportPurpose (a unit test holds them
# equal): importing governance here would load Kafka's client for every accord command.
class Finding(enum.StrEnum):
    JUSTIFIED = "justified"
    NOT_JUSTIFIED = "not-justified"


FindingOption = Annotated[
    Finding, typer.Option("--finding", help="Your conclusion on the override.")
]


class SubjectReason(enum.StrEnum):
    SUBJECT_ACCESS_REQUEST = "subject_access_request"
    OVERRIDE_REVIEW = "override_review"
    COMPLAINT = "complaint"
    AUDIT_SAMPLE = "audit_sample"
    CARE_PROCEEDINGS = "care_proceedings"


class ReportReason(enum.StrEnum):
    OVERSIGHT = "oversight"
    OVERRIDE_REVIEW = "override_review"
    AUDIT_SAMPLE = "audit_sample"
    COMPLAINT = "complaint"
    SECURITY_INCIDENT = "security_incident"


_WHY = "Why you are looking (recorded in the audit log). Asked for at a terminal if left out."
SubjReason = Annotated[SubjectReason | None, typer.Option("--reason", help=_WHY)]
RepReason = Annotated[ReportReason | None, typer.Option("--reason", help=_WHY)]
