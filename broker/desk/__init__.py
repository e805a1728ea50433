"""The recipients' desk: what the co-ordinating team, hubs and schools use to work with what
Accord delivers to them (docs/desk.md).

``accord desk --as PARTY`` serves a web app (the governance console's security bar, from
:mod:`broker.webauth`) over the party's own store: the party's deliveries opened with its own
key, the flag service's flags, and what its people decided. Every view of a record sends an
access acknowledgement naming the signed-in person to ``accord.access`` before the page shows
it. Referrals and their outcomes are events published through the broker, decided by policy
like any other.
"""

from broker.desk._app import create_desk_app
from broker.desk._deps import Acknowledger, DeskDeps, EventPublisher
from broker.desk._flag import Flag, child_key, flag_id, household_key
from broker.desk._flag_scenario import run_flag_scenario
from broker.desk._flagging import ChildState, FlagEngine, WindowRecord, window_record
from broker.desk._flags_app import FlagServiceOptions, build_flags_app
from broker.desk._flags_ops import flags_ops
from broker.desk._flags_start import log_flags_started, warn_if_another_instance
from broker.desk._household import HouseholdMessage, HouseholdState
from broker.desk._ingest import DeskIngest, children_in, flags_topic
from broker.desk._serve import DeskRun, check_desk_party, run_desk
from broker.desk._sighup import sighup_ignored
from broker.desk._store import DeskStore
from broker.desk._store_open import open_desk_store
from broker.desk._withdrawn_keep import withdrawn_keep
from broker.desk._work import encompass_notice, outcome_event, referral_event

# Kept and made by broker.keys, so that 'accord keys init' makes it with the SDK alone; the
# desk and its flag service read it.
from broker.keys import LINKAGE_FILE, LINKAGE_SECRET, desk_linkage_key, linkage_secret_name

__all__ = [
    "LINKAGE_FILE",
    "LINKAGE_SECRET",
    "Acknowledger",
    "ChildState",
    "DeskDeps",
    "DeskIngest",
    "DeskRun",
    "DeskStore",
    "EventPublisher",
    "Flag",
    "FlagEngine",
    "FlagServiceOptions",
    "HouseholdMessage",
    "HouseholdState",
    "WindowRecord",
    "build_flags_app",
    "check_desk_party",
    "child_key",
    "children_in",
    "create_desk_app",
    "desk_linkage_key",
    "encompass_notice",
    "flag_id",
    "flags_ops",
    "flags_topic",
    "household_key",
    "linkage_secret_name",
    "log_flags_started",
    "open_desk_store",
    "outcome_event",
    "referral_event",
    "run_desk",
    "run_flag_scenario",
    "sighup_ignored",
    "warn_if_another_instance",
    "window_record",
    "withdrawn_keep",
]
