"""The desk's party-local linkage secret: kept, made and read by ``broker.keys``
(``desk_linkage_key``; its module says how), so that ``accord keys init`` makes it on an
install with the SDK only. Re-exported here, where the desk and its flag service use it."""

from broker.keys import LINKAGE_FILE, LINKAGE_SECRET, desk_linkage_key, linkage_secret_name

__all__ = ["LINKAGE_FILE", "LINKAGE_SECRET", "desk_linkage_key", "linkage_secret_name"]
