"""The recipients' desk: what the co-ordinating team, hubs and schools use to work with what
Accord delivers to them (docs/desk.md)."""

from broker.desk._flag import Flag, child_key, flag_id
from broker.desk._flag_scenario import run_flag_scenario
from broker.desk._flagging import ChildState, FlagEngine, WindowRecord, window_record
from broker.desk._flags_app import FlagServiceOptions, build_flags_app
from broker.desk._linkage import LINKAGE_FILE, desk_linkage_key

__all__ = [
    "LINKAGE_FILE",
    "ChildState",
    "Flag",
    "FlagEngine",
    "FlagServiceOptions",
    "WindowRecord",
    "build_flags_app",
    "child_key",
    "desk_linkage_key",
    "flag_id",
    "run_flag_scenario",
    "window_record",
]
