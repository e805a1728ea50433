"""The client SDK: agencies publish sealed events; recipients consume their own records.

    async with Publisher("wmp", keystore, bootstrap) as pub:
        receipt = await pub.publish(event)

    async with Subscriber("sandwell-coord", keystore, bootstrap, group="coord") as sub:
        async for record in sub:
            ...
            await record.opened(by="practitioner-17", purpose="early_help")

See ``docs/sdk.md``.
"""

from broker.events import AccessAck, Delivery, WithdrawalNotice
from broker.sdk._files import GoodRow, RowProblem, read_export
from broker.sdk._publisher import Publisher, Receipt
from broker.sdk._subscriber import SharedRecord, Subscriber, Unopenable

__all__ = [
    "AccessAck",
    "Delivery",
    "GoodRow",
    "Publisher",
    "Receipt",
    "RowProblem",
    "SharedRecord",
    "Subscriber",
    "Unopenable",
    "WithdrawalNotice",
    "read_export",
]
