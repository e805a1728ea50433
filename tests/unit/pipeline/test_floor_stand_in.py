"""The Kafka floor's stand-in processor (``benchmarks/_floor.py``) answers whatever the worker's
loop asks of a processor for each record and each transaction, so ``make bench`` does not
break when the loop asks something new (it did: ``recall_due``)."""

from __future__ import annotations

import ast
from pathlib import Path

from benchmarks._floor import _Replay

REPO = Path(__file__).resolve().parents[3]
# adopt, reseal: asked only of the task that takes on an older Accord's shares or seals
# consent entries again after a key rotation, never in the floor (its state view is empty).
NOT_ASKED_OF_THE_FLOOR = {"adopt", "reseal"}


def _asked_of_a_processor(module: Path) -> set[str]:
    """Every ``<...>processor.<name>`` the module reads."""
    names = set()
    for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Attribute):
            continue
        owner = node.value
        if (isinstance(owner, ast.Name) and owner.id == "processor") or (
            isinstance(owner, ast.Attribute) and owner.attr == "processor"
        ):
            names.add(node.attr)
    return names


def test_the_floors_stand_in_answers_all_the_loop_asks_of_a_processor() -> None:
    asked = set()
    for name in ("_loop.py", "_tasks.py"):
        asked |= _asked_of_a_processor(REPO / "broker" / "pipeline" / name)
    asked -= NOT_ASKED_OF_THE_FLOOR
    assert {"handle", "consumed", "recall_due"} <= asked  # the walk finds the calls
    stand_in = _Replay([[]])
    assert {name for name in asked if not hasattr(stand_in, name)} == set()
    assert stand_in.recall_due() is False
