"""Where the worker resumes: consumed offsets live in its changelog, not the group's commits."""

from __future__ import annotations

from collections.abc import Callable

from broker.audit import AuditKind, AuditRecord
from broker.keys import FileKeyStore
from broker.pipeline._effects import OutRecord, SetOffset
from broker.pipeline._processor import Processor
from broker.pipeline._state import WorkerState
from broker.pipeline._view import StateView
from broker.topics import AUDIT, STATE, ingress
from tests.unit.pipeline.conftest import AT
from tests.unit.pipeline.test_processor import incident, seal_as


def test_consumed_offsets_survive_a_rebuild_from_the_changelog() -> None:
    state = WorkerState()
    entries = [
        state.change(SetOffset("accord.ingress.wmp", 2, 41)),
        state.change(SetOffset("accord.consent", 0, 7)),
        state.change(SetOffset("accord.ingress.wmp", 2, 97)),  # a later commit there
    ]
    rebuilt = StateView()
    for entry in entries:
        assert not entry.sensitive  # an offset says nothing about anyone
        rebuilt.apply(entry.key, entry.value)
    assert rebuilt.offsets == {("accord.ingress.wmp", 2): 97, ("accord.consent", 0): 7}


def test_the_chain_head_is_written_once_per_transaction_and_resumes_the_chain(
    make_processor: Callable[..., Processor], pipeline_keys: FileKeyStore
) -> None:
    """Records carry no head entry; closing a transaction adds a signed checkpoint and then
    the newest head, only when the chain moved."""
    processor = make_processor()
    outs: list[OutRecord] = []
    for offset in range(3):
        record = seal_as(pipeline_keys, "wmp", incident(), topic=ingress("wmp"))
        outs += processor.handle(ingress("wmp"), 0, offset, *record, at=AT)
    assert not [o for o in outs if o.topic == STATE and o.key.startswith(b"h:")]  # type: ignore[union-attr]
    closing = processor.consumed({(ingress("wmp"), 0): 3})
    heads = [o for o in closing if o.topic == STATE and o.key.startswith(b"h:")]  # type: ignore[union-attr]
    assert len(heads) == 1
    chain = processor.outbox.chain
    rebuilt = StateView()
    rebuilt.apply(heads[0].key.decode(), heads[0].value)  # type: ignore[union-attr]
    assert rebuilt.heads[chain.chain] == (chain.next_seq - 1, chain.prev_hash)
    last = AuditRecord.model_validate_json([o for o in closing if o.topic == AUDIT][-1].value)
    assert last.kind is AuditKind.CHECKPOINT
    assert last.data["covers_seq"] == last.seq - 1  # everything the transaction wrote
    assert (last.seq, last.hash) == rebuilt.heads[chain.chain]
    again = processor.consumed({})
    assert again == []  # nothing new: no second head
