"""The client SDK: agencies publish sealed events; recipients consume their own records.

    async with Publisher("wmp", keystore, kafka) as pub:
        receipt = await pub.publish(event)

    async with Subscriber("sandwell-coord", keystore, kafka, "sandwell-coord.cases") as sub:
        async for record in sub:  # each event id opened is remembered across restarts
            ...
            await record.opened(by="practitioner-17", purpose="early_help")

See ``docs/sdk.md``.
"""

from broker.events import AccessAck, Delivery, WithdrawalNotice
from broker.sdk._files import GoodRow, RowProblem, read_export
from broker.sdk._publisher import MAX_PROBLEMS, Publisher, Receipt, validate_batch
from broker.sdk._replay import DEFAULT_REPLAY_RETENTION, SqliteReplayMemory, default_replay_file
from broker.sdk._subscriber import SharedRecord, Subscriber
from broker.sdk._unopenable import Unopenable

__all__ = [
    "DEFAULT_REPLAY_RETENTION",
    "MAX_PROBLEMS",
    "AccessAck",
    "Delivery",
    "GoodRow",
    "Publisher",
    "Receipt",
    "RowProblem",
    "SharedRecord",
    "SqliteReplayMemory",
    "Subscriber",
    "Unopenable",
    "WithdrawalNotice",
    "default_replay_file",
    "read_export",
    "validate_batch",
]
