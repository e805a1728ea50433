"""The recipients' desk: what the co-ordinating team, hubs and schools use to work with what
Accord delivers to them (docs/desk.md)."""

from broker.desk._flag import Flag, child_key, flag_id

__all__ = ["Flag", "child_key", "flag_id"]
